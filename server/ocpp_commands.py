"""Calls the server makes to an OCPP 1.6J charger on a dashboard's request.

Dashboard messages on the `role=client` socket (registered into `app.client_handlers` by
`register(app)`, like server/dashboard_messages.py), each answered once the charger answered:

    {"type":"remote_start","uid":"04A32B1C","station_id":5}   (operator or admin)
        -> {"type":"remote_start_result","station_id":5,"uid":"04A32B1C","status":"Accepted"|"Rejected"}
    {"type":"admin_ocpp_get_configuration","station_id":5}    (admin)
        -> {"type":"admin_result","ok":true,"action":...,"station_id":5,
            "configuration":{"MeterValueSampleInterval":"60"}}
    {"type":"admin_ocpp_change_configuration","station_id":5,"key":"MeterValueSampleInterval","value":30}
        -> {"type":"admin_result","ok":true,"action":...,"station_id":5,"status":"Accepted"|"Rejected"|...}

`station_id` may be left out on a socket subscribed to one station. Every message may carry a
`request_id` that the answer echoes. Refusals are the protocol's `error` with a code:
FORBIDDEN (role), INVALID_MESSAGE, NOT_FOUND (no such station, or an unknown card),
CARD_DISABLED, CHARGER_OFFLINE (the station has no OCPP charger connected, or it did not
answer), and for a remote start STATION_BUSY (a session is open) or STATION_FAULT (emergency). A remote start creates no session by itself: the charger answers Accepted and then
sends its StartTransaction, which goes through the same card rules as a tap (server/ocpp.py).

In a fleet (server/cluster/) a call for a charger connected to another process goes to that
process (`fleet.forward`), which runs the same handler (`app.owner_calls`); its answer or
refusal is what the dashboard gets, CHARGER_OFFLINE when no process serves the charger.
The token is checked where the dashboard is connected.
"""

from __future__ import annotations

import logging

from ocpp.v16 import call

from server import protocol as p
from server.dashboard_messages import (
    Refused,
    answered,
    field_id,
    field_uid,
    owner_call,
    request_id_of,
)
from server.hub import send
from server.vocabulary import (
    CARD_DISABLED,
    CHARGER_OFFLINE,
    FORBIDDEN,
    NOT_FOUND,
    STATION_BUSY,
    STATION_FAULT,
)

log = logging.getLogger(__name__)

CONFIGURABLE = ("MeterValueSampleInterval",)
MAX_SAMPLE_INTERVAL_S = 86_400
# a call forwarded to another process of a fleet waits for that process's own wait for the
# charger (server/ocpp.py REMOTE_CALL_TIMEOUT_S, 30 s) and a margin
FORWARD_TIMEOUT_S = 35.0


def _station_of(data: dict, subscribed: int | None) -> int:
    station_id = field_id(data, "station_id", required=subscribed is None)
    if station_id is None:
        return subscribed
    if subscribed is not None and station_id != subscribed:
        raise Refused(f"{data['type']}: this socket is subscribed to station {subscribed}")
    return station_id


def _charge_point(app, station_id: int):
    """The connected OCPP charge point of a station (server/ocpp.py), else CHARGER_OFFLINE."""
    link = app.hub.publishers.get(station_id)
    point = getattr(link, "point", None)
    if point is None:
        raise Refused(f"station {station_id} has no OCPP charger connected", CHARGER_OFFLINE)
    return point


async def _ask(point, station_id: int, request):
    try:
        return await point.call(request)
    except Exception as problem:  # noqa: BLE001 - gone, silent or a CALLERROR: the operator hears it
        log.warning("station %s: %s not answered: %s", station_id, type(request).__name__, problem)
        raise Refused(
            f"station {station_id}: the charger did not answer", CHARGER_OFFLINE
        ) from None


async def remote_start(app, data: dict, station_id: int) -> dict:
    uid = field_uid(data)
    card = await app.storage.find_card(uid)
    if card is None:
        raise Refused(f"remote_start: card {uid} is not registered", NOT_FOUND)
    if not card.enabled:
        raise Refused(f"remote_start: card {uid} is disabled", CARD_DISABLED)
    point = _charge_point(app, station_id)
    state = app.core.stations.get(station_id)
    if state is not None and state.emergency:
        raise Refused(
            f"station {station_id} is in emergency: it needs a local reset", STATION_FAULT
        )
    if state is not None and state.session is not None:
        raise Refused(f"station {station_id} is charging session {state.session.id}", STATION_BUSY)
    result = await _ask(point, station_id, call.RemoteStartTransaction(id_tag=uid, connector_id=1))
    log.info("station %s: RemoteStartTransaction for a card -> %s", station_id, result.status)
    return {
        "type": "remote_start_result",
        "station_id": station_id,
        "uid": uid,
        "status": result.status,
    }


async def get_configuration(app, data: dict, station_id: int) -> dict:
    point = _charge_point(app, station_id)
    result = await _ask(point, station_id, call.GetConfiguration(key=list(CONFIGURABLE)))
    values = {
        entry.get("key"): entry.get("value")
        for entry in (result.configuration_key or [])
        if isinstance(entry, dict) and entry.get("key") in CONFIGURABLE
    }
    return {"station_id": station_id, "configuration": values}


async def change_configuration(app, data: dict, station_id: int) -> dict:
    if data.get("key") not in CONFIGURABLE:
        raise Refused(f"{data['type']}: key must be one of {', '.join(CONFIGURABLE)}")
    value = data.get("value")
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_SAMPLE_INTERVAL_S
    ):
        raise Refused(
            f"{data['type']}: value must be whole seconds from 1 to {MAX_SAMPLE_INTERVAL_S}"
        )
    point = _charge_point(app, station_id)
    result = await _ask(
        point, station_id, call.ChangeConfiguration(key=data["key"], value=str(value))
    )
    log.info(
        "station %s: ChangeConfiguration %s=%s -> %s", station_id, data["key"], value, result.status
    )
    return {"station_id": station_id, "key": data["key"], "status": result.status}


# message type -> (handler, needs admin)
HANDLERS = {
    "remote_start": (remote_start, False),
    "admin_ocpp_get_configuration": (get_configuration, True),
    "admin_ocpp_change_configuration": (change_configuration, True),
}


async def handle(app, connection, subscribed: int | None, data: dict) -> None:
    """Run one message and answer it; a refusal changes nothing and keeps the socket."""
    request_id = None
    handler, needs_admin = HANDLERS[data["type"]]
    try:
        request_id = request_id_of(data)
        principal = app.handler.principals.get(connection)
        allowed = principal is not None and (
            principal.may_administer if needs_admin else principal.may_stop
        )
        if not allowed:
            app.handler.forbid(connection, data["type"], subscribed)  # logs who and what
            raise Refused(f"{data['type']}: not allowed for this token", FORBIDDEN)
        station_id = _station_of(data, subscribed)
        if not principal.may_see(station_id):
            raise Refused(f"{data['type']}: not allowed for this token", FORBIDDEN)
        if await app.storage.get_station(station_id) is None:
            raise Refused(f"station {station_id} does not exist", NOT_FOUND)
        forwarded = await app.fleet.forward(
            station_id, {**data, "station_id": station_id}, FORWARD_TIMEOUT_S
        )
        if forwarded is None:
            result = await handler(app, data, station_id)
        else:
            result = answered(forwarded)
    except Refused as refusal:
        app.note_error(refusal.code)
        return await send(connection, p.error(refusal.message, refusal.code, request_id=request_id))
    if "type" not in result:
        result = {"type": "admin_result", "ok": True, "action": data["type"], **result}
    await send(connection, {**result, "request_id": request_id})


def register(app) -> None:
    for message_type, (handler, _) in HANDLERS.items():
        app.client_handlers[message_type] = handle
        app.owner_calls[message_type] = owner_call(handler)

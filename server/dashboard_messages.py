"""Dashboard administration over the WebSocket: the `admin_*` message handlers.

websockets' HTTP side takes no request bodies, so the dashboard changes data with typed
messages on its `role=client` socket. One handler per message type, found by a table
(`ADMIN_HANDLERS`); `register(app)` adds them to the server's client dispatch table
(`app.client_handlers`, see server/app.py).

    {"type":"admin_add_user","name":"Ana"}                         -> user
    {"type":"admin_add_card","uid":"04:A3:2B:1C","user_id":2}      -> card
    {"type":"admin_set_card_enabled","uid":"04A32B1C","enabled":false} -> card
    {"type":"admin_set_tariff","station_id":1,"tariff":8.5}        -> station
    {"type":"admin_set_max_power","station_id":1,"max_power_w":7400} -> station
    {"type":"admin_add_station","name":"Garage","tariff":7,"station_id":2} (id optional) -> station
    {"type":"admin_add_station","name":"Wallbox","tariff":7,"charge_point_id":"CP-0042"} -> an OCPP 1.6J station
    {"type":"admin_ack_alert","station_id":1}  or  {"alert_id":7}  -> acknowledged
    {"type":"admin_set_offline_auth","station_id":1,"enabled":false} -> station_id, offline_auth
    {"type":"admin_list_offline_auth"}  -> stations: each seed station's setting and latest list

A handler validates, writes through Storage and returns its result and the effects that
follow (server/core.py: `UpdateStation` for the core's copy of a station, `ToClients` pushes);
`handle_admin` has the effect runner (server/effects.py) carry them out, then answers. No
handler touches the session core or the hub itself.

Every message may carry a `request_id` (integer or short text) that the answer echoes. Success
is `{"type":"admin_result","ok":true,"action":<type>,"request_id":..., <result>}`; refusal is the
protocol's `{"type":"error","message":...,"code":...,"request_id":...}` with INVALID_MESSAGE,
NOT_FOUND, DUPLICATE, FORBIDDEN or (offline authorization asked of an OCPP station)
NOT_SUPPORTED. Nothing is changed when a message is refused.

In a fleet (server/cluster/) a change reaches the process serving the station's charger at
once, not at the charger's next connect: a station's tariff, max power or offline setting
through `fleet.station_changed` (that process runs `station_changed` below: its core takes the
station as stored, its charger gets its list), a card through `fleet.cards_changed` (every
process pushes its chargers' lists). Calls that need the charger itself (OCPP calls, firmware
orders) travel to it with `fleet.forward`; `owner_call` and `answered` are both ends of that:
the process serving the charger runs the call and the dashboard gets its answer.

Acknowledging an emergency alert only records who-saw-it on the alert (`acknowledged_at`); it
never re-arms the charger: only a local reset at the charger clears `emergencia`.
`may_administer()` is the single authorization check: only a connection whose token has the
admin role (and is not limited to some stations) may administer; a refusal is logged with who
and what (server/ws.py `forbid`).
"""

import logging
import math
from collections.abc import Awaitable, Callable

from server import core as c
from server import protocol as p
from server.hub import send
from server.ids import is_positive_id
from server.storage import Duplicate, NotFound, Unsupported
from server.storage.values import check_max_power
from server.uids import InvalidUid, normalize_uid
from server.views import card_json, station_json, user_json

log = logging.getLogger(__name__)

MAX_NAME = 100
MAX_TARIFF = 10_000.0
MAX_REQUEST_ID_TEXT = 64


class Refused(Exception):
    """An admin message that changes nothing; becomes an `error` reply with this code."""

    def __init__(self, message: str, code: str = p.INVALID_MESSAGE):
        super().__init__(message)
        self.message = message
        self.code = code


def may_administer(app, connection, station_id: int | None) -> bool:
    """The one authorization check for admin messages: an unrestricted admin token."""
    principal = app.handler.principals.get(connection)
    return principal is not None and principal.may_administer


# ---------------------------------------------------------------- field rules (pure)


def field_id(data: dict, name: str, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not is_positive_id(value):
        raise Refused(f"{data['type']}: {name} must be a positive integer")
    return value


def field_name(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"{data['type']}: {name} must be a non-empty text")
    value = value.strip()
    if len(value) > MAX_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Refused(f"{data['type']}: {name} must be at most {MAX_NAME} printable characters")
    return value


def field_tariff(data: dict) -> float:
    value = data.get("tariff")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Refused(f"{data['type']}: tariff must be a number (price per kWh)")
    if not 0 <= value <= MAX_TARIFF:
        raise Refused(f"{data['type']}: tariff must be from 0 to {MAX_TARIFF:g} per kWh")
    return float(value)


def field_uid(data: dict) -> str:
    try:
        return normalize_uid(data.get("uid"))
    except InvalidUid as problem:
        raise Refused(f"{data['type']}: uid: {problem}") from None


def field_flag(data: dict, name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise Refused(f"{data['type']}: {name} must be true or false")
    return value


def request_id_of(data: dict) -> int | str | None:
    value = data.get("request_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Refused("request_id must be an integer or a short text")
    if isinstance(value, str) and len(value) > MAX_REQUEST_ID_TEXT:
        raise Refused(f"request_id must be at most {MAX_REQUEST_ID_TEXT} characters")
    if isinstance(value, int) and not 0 <= value <= p.MAX_ID:
        raise Refused("request_id out of range")
    return value


# ---------------------------------------------------------------- handlers, one per type


async def add_user(app, data: dict) -> tuple[dict, list]:
    user = await app.storage.add_user(field_name(data, "name"))
    return {"user": user_json(user)}, []


async def add_card(app, data: dict) -> tuple[dict, list]:
    uid, user_id = field_uid(data), field_id(data, "user_id")
    card = await app.storage.add_card(uid, user_id)
    await _push_lists(app)
    return {"card": card_json(card)}, []


async def set_card_enabled(app, data: dict) -> tuple[dict, list]:
    uid, enabled = field_uid(data), field_flag(data, "enabled")
    await app.storage.set_card_enabled(uid, enabled)
    card = await app.storage.find_card(uid)
    await _push_lists(app)
    return {"card": card_json(card)}, []


async def set_offline_auth(app, data: dict) -> tuple[dict, list]:
    """Turn a station's offline starts on or off; its charger gets the new list at once."""
    station_id, enabled = field_id(data, "station_id"), field_flag(data, "enabled")
    try:
        await app.storage.set_offline_auth(station_id, enabled)  # NotFound: unknown station
    except Unsupported as refusal:  # an OCPP station: its charger gets no list
        raise Refused(str(refusal), p.NOT_SUPPORTED) from None
    await _push_lists(app, station_id)
    return {"station_id": station_id, "offline_auth": enabled}, []


async def list_offline_auth(app, data: dict) -> tuple[dict, list]:
    """Each seed station's offline setting, whether it has a station key (only a keyed charger
    gets lists) and the newest list signed for it, for the admin page's switch (admins only,
    like every admin_* message: the page shows the switch only when this is answered). OCPP
    stations get no list (docs/protocol.md, "Offline cards"): not listed. One storage query."""
    stations = {}
    for state in await app.storage.offline_auth_states():
        latest = state.latest
        stations[str(state.station_id)] = {
            "offline_auth": state.offline_auth,
            "keyed": state.keyed,
            "list": None
            if latest is None
            else {
                "version": latest[0],
                "offline": latest[1],
                "cards": len(latest[2].split(",")) if latest[2] else 0,
                "signed_at": latest[3],
            },
        }
    return {"stations": stations}, []


async def _push_lists(app, station_id: int | None = None) -> None:
    """The changed offline lists to the connected chargers (server/offline_auth.py), those of
    the fleet's other processes too; the change itself is stored, so a failure here is logged
    and the periodic refresh retries."""
    try:
        if station_id is None:
            app.fleet.cards_changed()
            await app.auth_lists.push_all()
        else:
            await app.auth_lists.push(station_id)
            await app.fleet.station_changed(station_id)
    except Exception:  # noqa: BLE001
        log.exception("offline lists not pushed after an administrator's change")


async def _station_changed(app, station_id: int) -> tuple[dict, list]:
    """The answer and effects of a changed station: its record as stored, into this core and
    (a fleet) the core of the process serving its charger."""
    station = await app.storage.get_station(station_id)
    try:
        await app.fleet.station_changed(station_id)
    except Exception:  # noqa: BLE001 - stored: the charger's next connect loads it anyway
        log.exception("station %s: the process serving its charger was not told", station_id)
    update = c.UpdateStation(station.id, station.name, station.tariff, station.max_power_w)
    return {"station": station_json(station)}, [update]


async def set_tariff(app, data: dict) -> tuple[dict, list]:
    station_id, tariff = field_id(data, "station_id"), field_tariff(data)
    await app.storage.set_tariff(station_id, tariff)  # NotFound for an unknown station
    return await _station_changed(app, station_id)  # open sessions keep their tariff


async def set_max_power(app, data: dict) -> tuple[dict, list]:
    """The most the station's charger can deliver: readings are billed within it from the next
    one on (server/energy.py), the open session's included."""
    station_id = field_id(data, "station_id")
    try:
        max_power_w = check_max_power(data.get("max_power_w"))
    except ValueError as problem:
        raise Refused(f"{data['type']}: {problem}") from None
    await app.storage.set_max_power(station_id, max_power_w)  # NotFound for an unknown station
    return await _station_changed(app, station_id)  # the answer: the station as stored


async def station_changed(app, station_id: int, command: dict) -> dict:
    """`fleet.station_changed`'s end on the process serving the charger: the core takes the
    station as stored (tariff, max power), the charger its offline list."""
    station = await app.storage.get_station(station_id)
    if station is None:
        return {"error": {"message": f"station {station_id} does not exist", "code": p.NOT_FOUND}}
    update = c.UpdateStation(station.id, station.name, station.tariff, station.max_power_w)
    await app.effects.run([update], None)
    await app.auth_lists.push(station_id)
    log.info("station %s: changed by another process, taken as stored", station_id)
    return {"result": {"station": station_json(station)}}


# ---------------------------------------------------------------- calls run by the charger's process

OwnerCall = Callable[[object, dict, int], Awaitable[dict]]


def owner_call(handler: OwnerCall):
    """`handler(app, data, station_id) -> result` as the process serving the charger runs it
    for another process (`app.owner_calls`, server/cluster/fleet.py): its answer is
    {"result": result} or {"error": {"message","code"}}, what that process's dashboard gets."""

    async def run(app, station_id: int, data: dict) -> dict:
        try:
            return {"result": await handler(app, data, station_id)}
        except Refused as refusal:
            return {"error": {"message": refusal.message, "code": refusal.code}}
        except NotFound as missing:
            return {"error": {"message": str(missing), "code": p.NOT_FOUND}}
        except ValueError as bad_value:
            return {"error": {"message": str(bad_value), "code": p.INVALID_MESSAGE}}

    return run


def answered(answer: dict) -> dict:
    """The result of a call the process serving the charger ran (`fleet.forward`); its refusal
    is raised as this process's own."""
    error = answer.get("error")
    if isinstance(error, dict):
        raise Refused(str(error.get("message", "")), str(error.get("code", p.SERVER_ERROR)))
    result = answer.get("result")
    if not isinstance(result, dict):
        raise Refused("the server serving the charger gave no answer", p.SERVER_ERROR)
    return result


async def add_station(app, data: dict) -> tuple[dict, list]:
    name, tariff = field_name(data, "name"), field_tariff(data)
    charge_point_id = data.get("charge_point_id")  # Storage checks it (ValueError: INVALID_MESSAGE)
    if charge_point_id is not None and not isinstance(charge_point_id, str):
        raise Refused("admin_add_station: charge_point_id must be a text")
    station = await app.storage.add_station(
        name, tariff, field_id(data, "station_id", required=False), charge_point_id=charge_point_id
    )
    update = c.UpdateStation(
        station.id, station.name, station.tariff, station.max_power_w, announce=True
    )
    return {"station": station_json(station)}, [update]


async def ack_alert(app, data: dict) -> tuple[dict, list]:
    """Acknowledge one alert (`alert_id`) or every open alert of a station (`station_id`)."""
    alert_id = field_id(data, "alert_id", required=False)
    station_id = field_id(data, "station_id", required=False)
    if (alert_id is None) == (station_id is None):
        raise Refused("admin_ack_alert: give either alert_id or station_id")
    now = app.clock()
    if alert_id is not None:
        station_of = {
            a.id: a.station_id
            for a in await app.storage.list_alerts(unacknowledged_only=True, limit=1000)
        }
        newly = await app.storage.acknowledge_alert(alert_id, now)  # NotFound for an unknown id
        acknowledged = [(alert_id, station_of.get(alert_id))] if newly else []
    else:
        if await app.storage.get_station(station_id) is None:
            raise NotFound(f"station {station_id} does not exist")
        alerts = await app.storage.list_alerts(
            station_id=station_id, unacknowledged_only=True, limit=1000
        )
        acknowledged = [
            (a.id, a.station_id) for a in alerts if await app.storage.acknowledge_alert(a.id, now)
        ]
    pushes = [
        c.ToClients(
            station,
            {
                "type": "alert_acknowledged",
                "charger_id": station,
                "alert_ids": [aid for aid, sid in acknowledged if sid == station],
            },
        )
        for station in sorted({sid for _, sid in acknowledged if sid is not None})
    ]
    return {"acknowledged": [aid for aid, _ in acknowledged]}, pushes


AdminHandler = Callable[[object, dict], Awaitable[tuple[dict, list]]]

ADMIN_HANDLERS: dict[str, AdminHandler] = {
    "admin_add_user": add_user,
    "admin_add_card": add_card,
    "admin_set_card_enabled": set_card_enabled,
    "admin_set_tariff": set_tariff,
    "admin_set_max_power": set_max_power,
    "admin_add_station": add_station,
    "admin_ack_alert": ack_alert,
    "admin_set_offline_auth": set_offline_auth,
    "admin_list_offline_auth": list_offline_auth,
}


async def handle_admin(app, connection, station_id: int | None, data: dict) -> None:
    """Run one admin message and answer it; a refusal changes nothing and keeps the socket; a
    failure (e.g. storage) answers SERVER_ERROR with the message's request_id."""
    request_id = None
    try:
        request_id = request_id_of(data)
        if not may_administer(app, connection, station_id):
            app.handler.forbid(connection, data["type"], station_id)  # logs who and what
            raise Refused(f"{data['type']}: only an admin token may administer", p.FORBIDDEN)
        result, effects = await ADMIN_HANDLERS[data["type"]](app, data)
    except Refused as refusal:
        return await refuse(app, connection, refusal.message, refusal.code, request_id)
    except NotFound as missing:
        return await refuse(app, connection, str(missing), p.NOT_FOUND, request_id)
    except Duplicate as duplicate:
        return await refuse(app, connection, str(duplicate), p.DUPLICATE, request_id)
    except ValueError as bad_value:  # Storage's own validation
        return await refuse(app, connection, str(bad_value), p.INVALID_MESSAGE, request_id)
    except Exception:  # noqa: BLE001 - answered to its request (the page does not wait it out)
        log.exception("admin message %s failed", data.get("type"))
        return await refuse(
            app, connection, "Error interno del servidor", p.SERVER_ERROR, request_id
        )
    await app.effects.run(effects, connection)
    reply = {
        "type": "admin_result",
        "ok": True,
        "action": data["type"],
        "request_id": request_id,
        **result,
    }
    await send(connection, reply)


async def refuse(app, connection, message: str, code: str, request_id) -> None:
    app.note_error(code)
    await send(connection, p.error(message, code, request_id=request_id))


def register(app) -> None:
    """Add every admin message type to the server's client dispatch table (before traffic)."""
    for message_type in ADMIN_HANDLERS:
        app.client_handlers[message_type] = handle_admin
    app.owner_calls["station_changed"] = station_changed

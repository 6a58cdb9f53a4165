"""The OCPP 1.6J endpoint: `ws://HOST:PORT/ocpp/{chargePointId}`, subprotocol `ocpp1.6`.

Owns the door for OCPP chargers (`admit`, from the app's process_request: unknown charge point
id 404, HTTP Basic auth with user = charge point id and password = the station key else 401,
no `ocpp1.6` offered 400) and one `ChargePoint` (the `ocpp` package's, mobilityhouse) per
connection that turns the Core profile into the neutral events of server/vocabulary.py
through server/codecs/ocpp16.py. The station's connection is registered with the hub through
an `OcppLink`, so the core's commands reach it as OCPP: the answer to the StartTransaction in
progress, or a RemoteStopTransaction call.

Every transaction message (StartTransaction, MeterValues, StopTransaction) is answered only
once what it wrote is committed: OCPP's CALLRESULT is the charger's acknowledgement and it
then drops the message from its offline queue (OCPP 1.6 §3.7). A write the database refused
(a session's end on a read-only disk, a fleet's stale owner) is answered with a CALLERROR
`InternalError` instead, as the seed path withholds its ack: the charger keeps the message and
sends it again (OCPP 1.6 §4.10, TransactionMessageAttempts); the server itself retries a
refused session end (server/effects.py), and a StopTransaction sent again is accepted once that
end is stored. Late and repeated messages are harmless: a repeated StartTransaction gets the
same transactionId, a reading already counted counts nothing, a stop of a closed session is
ignored.

One connector per station (connectorId 0 reports the whole charge point). A charger's messages
are under the same rate limit as a seed charger's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from ocpp.exceptions import InternalError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, MessageTrigger, RegistrationStatus
from websockets.exceptions import ConnectionClosed

from server.codecs import ocpp16 as codec
from server.http import json_response
from server.keys import station_key_matches
from server.storage.values import check_charge_point_id
from server.uids import InvalidUid, normalize_uid
from server.vocabulary import (
    NOT_FOUND,
    SERVER_ERROR,
    CardPresented,
    MeterSample,
    Refusal,
    StartCharging,
    StopCharging,
)

log = logging.getLogger(__name__)
# the `ocpp` package logs every frame at INFO, card idTags included: only its warnings go to the
# operator's log (our own lines say what happened, without the cards)
logging.getLogger("ocpp").setLevel(logging.WARNING)


class NotStored(InternalError):
    """What a charger's message wrote was refused by the database: answered as a CALLERROR
    InternalError, so the charge point keeps the message and sends it again."""


def _not_our_traceback(record: logging.LogRecord) -> bool:
    """The `ocpp` package logs a traceback for every handler exception; a NotStored is no bug
    (our own warning line says what happened)."""
    return not (record.exc_info and isinstance(record.exc_info[1], NotStored))


logging.getLogger("ocpp").addFilter(_not_our_traceback)

PATH_PREFIX = "/ocpp/"
HEARTBEAT_INTERVAL_S = 60
REMOTE_CALL_TIMEOUT_S = 30
STARTS_REMEMBERED = 16  # per station: the latest StartTransactions, answered again if replayed


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def charge_point_id(path: str) -> str | None:
    """The charge point id of an /ocpp/{id} path, or None when it names none."""
    name = unquote(urlsplit(path).path[len(PATH_PREFIX) :])
    try:
        return check_charge_point_id(name)
    except ValueError:
        return None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        user, _, password = (
            base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return user, password


class OcppEndpoint:
    """One per running server: the door (`admit`) and the connections (`serve`)."""

    def __init__(self, app):
        self.app = app
        self.admitted: dict = {}  # connection -> its Station, from the handshake to the handler
        self.started: dict[int, dict] = {}  # station id -> {(idTag, timestamp): transactionId}

    def select_subprotocol(self, connection, subprotocols):
        if (
            urlsplit(connection.request.path).path.startswith(PATH_PREFIX)
            and codec.SUBPROTOCOL in subprotocols
        ):
            return codec.SUBPROTOCOL
        return None

    async def admit(self, connection, request):
        """The handshake of /ocpp/{id}: None lets it go on, else the HTTP refusal."""
        cp_id = charge_point_id(request.path)
        station = await self.app.storage.station_by_charge_point(cp_id) if cp_id else None
        if station is None:
            log.warning("refused an OCPP connection for unknown charge point %r", request.path[:80])
            return json_response(404, {"code": NOT_FOUND, "message": "unknown charge point id"})
        if self.app.config.auth:
            credentials = _basic_credentials(request.headers.get("Authorization"))
            key_hash = await self.app.storage.station_key_hash(station.id)
            if (
                credentials is None
                or credentials[0] != cp_id
                or not station_key_matches(credentials[1], key_hash)
            ):
                log.warning(
                    "refused charge point %s: missing or wrong HTTP Basic credentials", cp_id
                )
                response = json_response(
                    401,
                    {
                        "code": "UNAUTHORIZED",
                        "message": "HTTP Basic auth: charge point id and station key",
                    },
                )
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
                return response
        offered = [
            p.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
        ]
        if codec.SUBPROTOCOL not in offered:
            log.warning("refused charge point %s: it did not offer the ocpp1.6 subprotocol", cp_id)
            return json_response(
                400,
                {
                    "code": "SUBPROTOCOL_REQUIRED",
                    "message": "Sec-WebSocket-Protocol must offer ocpp1.6",
                },
            )
        self.admitted[connection] = station
        return None

    async def serve(self, connection) -> None:
        station = self.admitted.pop(connection, None)
        if station is None or connection.subprotocol != codec.SUBPROTOCOL:
            return await connection.close(1002, "ocpp1.6 required")
        handler = self.app.handler
        handler.core.add_station(station.id, station.name, station.tariff, station.max_power_w)
        limited = RateLimited(connection, handler._frames(connection, "publisher"))
        point = StationChargePoint(station.charge_point_id, limited, self, station.id)
        await handler._serve_publisher(point.link, station.id, codec.OCPP16, reader=point.start)


class RateLimited:
    """The connection as the ChargePoint reads it: its messages through the same per-connection
    rate limit as a seed charger's (server/ws.py `_frames`: over it, read later; sustained
    abuse closes 1008)."""

    def __init__(self, connection, frames):
        self.connection, self.frames = connection, frames
        self.remote_address = connection.remote_address

    async def recv(self):
        try:
            return await anext(self.frames)
        except StopAsyncIteration:  # closed (by the peer, or 1008 for abuse)
            raise ConnectionClosed(None, None) from None

    async def send(self, message) -> None:
        await self.connection.send(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)


class _Refused:
    """Stands for an AckSender in the effect runner while an OCPP message's effects run:
    `hold()` notes that one of its writes failed."""

    held = False

    def hold(self) -> None:
        self.held = True


class OcppLink:
    """What the hub knows as the station's publisher: takes neutral commands (the codec
    passes them through) and turns them into OCPP."""

    def __init__(self, point: StationChargePoint):
        self.point = point
        self.answer = None  # the core's StartCharging/Refusal for the call in progress
        self.tasks: set[asyncio.Task] = set()

    @property
    def remote_address(self):
        return self.point._connection.remote_address

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.point._connection.close(code, reason)

    async def send(self, command) -> None:
        if isinstance(command, (StartCharging, Refusal)):
            self.answer = command
        elif isinstance(command, StopCharging):
            task = asyncio.create_task(self.point.remote_stop(command.session_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        # Welcome, Acknowledge, RequestStatus: nothing to send in OCPP 1.6 (see the codec)


class StationChargePoint(ChargePoint):
    """The Core profile for one connected charge point (one connector)."""

    def __init__(self, cp_id: str, connection, endpoint: OcppEndpoint, station_id: int):
        super().__init__(cp_id, connection, response_timeout=REMOTE_CALL_TIMEOUT_S)
        self.endpoint = endpoint
        self.app = endpoint.app
        self.station_id = station_id
        self.link = OcppLink(self)

    # --- plumbing -------------------------------------------------------------------------------
    async def _event(self, event) -> None:
        """Let the core decide on `event` and carry out its effects; NotStored (the answer is a
        CALLERROR) when one of its writes failed, as a seed charger's frame goes unacknowledged."""
        app = self.app
        refused = _Refused()
        senders = app.effects.ack_senders  # the effect runner's hold() on a failed write
        senders[self.link] = refused
        try:
            await app.effects.run(
                app.core.handle_publisher(self.station_id, event, app.clock()), self.link
            )
        finally:
            senders.pop(self.link, None)
        if refused.held:
            log.warning(
                "station %s: %s could not be stored; answered with a CALLERROR so the charger "
                "sends it again",
                self.station_id,
                type(event).__name__,
            )
            raise NotStored(description="the server could not store this message; send it again")

    async def _end_stored(self, session_id: int) -> None:
        """A StopTransaction of a session the core has already closed (sent again after a
        CALLERROR, or a replay): accepted only once the session's end is in the database."""
        record = await self.app.storage.get_session(session_id)
        if record is not None and record.ended_at is None:
            log.warning(
                "station %s: the end of session %s is not stored yet; StopTransaction answered "
                "with a CALLERROR so the charger sends it again",
                self.station_id,
                session_id,
            )
            raise NotStored(description="the session's end is not stored yet; send it again")

    async def _durable(self) -> None:
        """Wait until what this message wrote is committed: the answer is the acknowledgement."""
        storage = self.app.storage
        # committed by the storage's batch flush (every flush_interval), as a seed charger's ack
        # is: not one transaction per message. A database that cannot write raises the timeout:
        # the charger gets a CALLERROR and keeps the message
        await asyncio.wait_for(storage.wait_durable(storage.write_mark()), REMOTE_CALL_TIMEOUT_S)

    def _open_session(self):
        return self.app.core.stations[self.station_id].session

    async def _card(self, id_tag: str):
        """The card an idTag names (None when unknown or not a UID), and the uid as stored."""
        try:
            uid = normalize_uid(id_tag)
        except InvalidUid:
            return None, id_tag
        return await self.app.storage.find_card(uid), uid

    async def remote_stop(self, session_id: int) -> None:
        try:
            result = await self.call(call.RemoteStopTransaction(transaction_id=session_id))
        except Exception as problem:  # noqa: BLE001 - gone or silent: the session is closed anyway
            log.warning(
                "station %s: RemoteStopTransaction %s not confirmed: %s",
                self.station_id,
                session_id,
                problem,
            )
            return
        log.info(
            "station %s: RemoteStopTransaction %s -> %s",
            self.station_id,
            session_id,
            getattr(result, "status", None),
        )

    def _in_background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.link.tasks.add(task)
        task.add_done_callback(self.link.tasks.discard)

    async def trigger_status(self) -> None:
        """TriggerMessage(StatusNotification): after a (re)boot the charger tells its status now,
        not at its next change, so the dashboard is right at once."""
        try:
            result = await self.call(
                call.TriggerMessage(
                    requested_message=MessageTrigger.status_notification, connector_id=1
                )
            )
        except Exception as problem:  # noqa: BLE001 - an optional feature: its status comes later
            log.warning(
                "station %s: TriggerMessage(StatusNotification) not answered: %s",
                self.station_id,
                problem,
            )
            return
        log.info(
            "station %s: TriggerMessage(StatusNotification) -> %s",
            self.station_id,
            getattr(result, "status", None),
        )

    # --- Core profile ---------------------------------------------------------------------------
    @after(Action.boot_notification)
    def after_boot_notification(self, **payload):
        # in the background: the call's answer is read by the loop that runs this hook
        self._in_background(self.trigger_status())

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **extra
    ):
        self.app.note_message("publisher", "BootNotification")
        log.info(
            "station %s: boot of a %s %s", self.station_id, charge_point_vendor, charge_point_model
        )
        return call_result.BootNotification(
            current_time=_now_iso(),
            interval=HEARTBEAT_INTERVAL_S,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        self.app.note_message("publisher", "Heartbeat")
        return call_result.Heartbeat(current_time=_now_iso())

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str):
        self.app.note_message("publisher", "Authorize")
        card, _ = await self._card(id_tag)
        if card is None:
            status = codec.INVALID
        else:
            status = codec.ACCEPTED if card.enabled else codec.BLOCKED
        return call_result.Authorize(id_tag_info=IdTagInfo(status=status))

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **extra
    ):
        self.app.note_message("publisher", "StartTransaction")
        memo = self.endpoint.started.setdefault(self.station_id, {})
        key = (id_tag, timestamp, meter_start)
        if key in memo:  # a StartTransaction resent from the offline queue: the same answer
            return call_result.StartTransaction(
                transaction_id=memo[key], id_tag_info=IdTagInfo(status=codec.ACCEPTED)
            )
        card, uid = await self._card(id_tag)
        session = self._open_session()
        if session is not None and session.card_uid == uid:
            # one connector: the same card while its session is open is that transaction sent
            # again (after a server restart the memo is gone, the open session is not)
            return call_result.StartTransaction(
                transaction_id=session.id, id_tag_info=IdTagInfo(status=codec.ACCEPTED)
            )
        if card is None:
            return call_result.StartTransaction(
                transaction_id=0, id_tag_info=IdTagInfo(status=codec.INVALID)
            )
        station = await self.app.storage.get_station(self.station_id)
        self.link.answer = None
        await self._event(CardPresented(uid, card, station.tariff if station is not None else None))
        answer, self.link.answer = self.link.answer, None
        if not isinstance(answer, StartCharging):
            code = answer.code if isinstance(answer, Refusal) else SERVER_ERROR
            return call_result.StartTransaction(
                transaction_id=0, id_tag_info=IdTagInfo(status=codec.id_tag_status(code))
            )
        memo[key] = answer.session_id
        while len(memo) > STARTS_REMEMBERED:
            del memo[next(iter(memo))]  # the oldest
        # the register at the start: the session's energy counts from meterStart
        await self._event(
            MeterSample(
                answer.session_id,
                0.0,
                0.0,
                0.0,
                codec.timestamp(timestamp),
                codec.meter_number(meter_start),
            )
        )
        await self._durable()
        return call_result.StartTransaction(
            transaction_id=answer.session_id, id_tag_info=IdTagInfo(status=codec.ACCEPTED)
        )

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list, transaction_id: int | None = None, **extra
    ):
        self.app.note_message("publisher", "MeterValues")
        session = self._open_session()
        if session is not None and transaction_id == session.id:  # a closed one's: a replay
            for sample in codec.meter_samples(transaction_id, meter_value):
                await self._event(sample)
            await self._durable()
        return call_result.MeterValues()

    def _owns(self, transaction_id: int) -> bool:
        return self.app.core.stations[self.station_id].owns(transaction_id)

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **extra
    ):
        self.app.note_message("publisher", "StopTransaction")
        if self._owns(transaction_id):
            session = self._open_session()
            await self._event(codec.charger_stop(transaction_id, meter_stop, timestamp))
            if session is None or session.id != transaction_id:  # closed before: stored yet?
                await self._end_stored(transaction_id)
            await self._durable()
        return call_result.StopTransaction(id_tag_info=IdTagInfo(status=codec.ACCEPTED))

    @on(Action.status_notification)
    async def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **extra
    ):
        self.app.note_message("publisher", "StatusNotification")
        if connector_id <= 1:
            session = self._open_session()
            report = codec.status_report(status, session.id if session is not None else None)
            if report is not None:
                await self._event(report)
                await self._durable()
        return call_result.StatusNotification()

"""The WebSocket adapter: admits connections, feeds frames to the session core, runs effects.

Admission (close codes in server/protocol.py): role -> token -> estacionId -> station exists.
A charger (role=publisher) replaces any older connection of its station (4008 to the old one);
each replacement is logged with both peers' addresses, and the core alerts a burst of them
(two chargers configured with the same station).
A dashboard (role=client, or the deprecated type=dashboard) subscribes to one station or, with
`estacionId=all`, to every station. A dashboard's frames are parsed by server/protocol.py, a
charger's are read through its protocol's codec (server/codecs/; this endpoint speaks `seed`)
into the neutral events the core takes, and the hub keeps the codec as the connection's
encoder. A bad frame gets an `error` reply and the connection stays open. The effects the core
returns are carried out in order by the effect runner (server/effects.py, `app.effects`).

Authentication happens once per connection (`app.auth.authenticate`, server/auth.py) and the
`Principal` it returns is kept for the connection's life: a dashboard's remote stop needs
operator or admin, `admin_*` messages need admin (server/dashboard_messages.py), and anything
refused is answered `error` FORBIDDEN and logged with who and what. Each connection also has a
token bucket (`RateLimit`, see `_frames`): over it a charger is slowed down and a dashboard
answered RATE_LIMITED; sustained abuse closes the connection with 1008.

Acknowledged delivery: the charger loop counts the frames it reads and, after each one is
handled, notes the storage write mark that covers it; the connection's `AckSender`
(server/acks.py) sends `Acknowledge(K)` (the seed's `{"type":"ack","n":K}`) once those writes
are committed. It ends with
the connection (a 4008 replacement included).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from server import core as c
from server import protocol as p
from server.acks import AckSender
from server.auth import station_number
from server.codecs import SEED
from server.effects import EffectRunner
from server.hub import send
from server.ocpp import PATH_PREFIX as OCPP_PATH_PREFIX
from server.uids import InvalidUid, normalize_uid
from server.vocabulary import (
    CardRead,
    OfflineStartPresented,
    OfflineStartReport,
    Refusal,
    RequestStatus,
    Welcome,
)

log = logging.getLogger(__name__)


CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class RateLimit:
    """Token bucket: `rate` frames per second, `burst` at once. `allow()` False = over the limit;
    `abusive` once more than `burst` frames in a row were over it (the caller closes 1008)."""

    def __init__(self, rate: float, burst: int, clock):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.last, self.over_in_a_row = float(burst), clock(), 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now

    def allow(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            self.over_in_a_row = 0
            return True
        self.over_in_a_row += 1
        return False

    def seconds_to_next(self) -> float:
        return max(0.0, (1 - self.tokens) / self.rate)

    def take_late(self) -> None:
        """Spend the token a delayed frame waited for (does not clear `over_in_a_row`)."""
        self._refill()
        self.tokens = max(0.0, self.tokens - 1)

    @property
    def abusive(self) -> bool:
        return self.over_in_a_row > self.burst


def _query_value(query: dict, name: str) -> str | None:
    values = query.get(name)
    return values[0].strip() if values and values[0].strip() else None


def _peer(connection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


class ConnectionHandler:
    """`handler(connection)` for websockets' serve(); one instance per running server."""

    def __init__(self, app):
        self.app = app
        self.core = app.core
        self.hub = app.hub
        self.storage = app.storage
        self.clock = app.clock
        self.background: set[asyncio.Task] = set()
        self.principals: dict = {}  # connection -> server.auth.Principal, while it is served
        self.ack_senders: dict = {}  # charger connection -> its AckSender, while its frames are read
        self.effects = EffectRunner(app, self.ack_senders, passthrough=(ConnectionClosed,))
        self.retries = self.effects.retries  # session ends the database refused, retried
        self.run_effects = self.effects.run

    async def __call__(self, connection: ServerConnection) -> None:
        if urlsplit(connection.request.path).path.startswith(OCPP_PATH_PREFIX):
            return await self.app.ocpp.serve(connection)  # OCPP 1.6J chargers (server/ocpp.py)
        query = parse_qs(urlsplit(connection.request.path).query)
        role = _query_value(query, "role")
        if role is None and _query_value(query, "type") == "dashboard":
            role = p.ROLE_CLIENT  # deprecated alias from the seed; role wins when both given
        estacion = _query_value(query, "estacionId")
        if role not in (p.ROLE_PUBLISHER, p.ROLE_CLIENT):
            return await connection.close(p.CLOSE_BAD_ROLE, "role must be publisher or client")
        if estacion is None:
            code = (
                p.CLOSE_PUBLISHER_WITHOUT_STATION
                if role == p.ROLE_PUBLISHER
                else p.CLOSE_CLIENT_WITHOUT_STATION
            )
            return await connection.close(code, "estacionId required")
        everything = role == p.ROLE_CLIENT and estacion.lower() == p.ALL_STATIONS
        if not everything and station_number(estacion) is None:  # cannot name any station
            return await connection.close(p.CLOSE_STATION_NOT_FOUND, "Estacion no encontrada")
        principal = await self.app.auth.authenticate(_query_value(query, "token"), role, estacion)
        if principal is None:
            log.warning(
                "refused a %s on estacionId=%s from %s: missing or invalid token",
                role,
                estacion[:20],
                _peer(connection),
            )
            return await connection.close(p.CLOSE_BAD_TOKEN, "invalid token")
        self.principals[connection] = principal
        try:
            if everything:
                return await self._serve_client(connection, None)
            station_id = await self._known_station(estacion)
            if station_id is None:
                return await connection.close(p.CLOSE_STATION_NOT_FOUND, "Estacion no encontrada")
            if role == p.ROLE_PUBLISHER:
                return await self._serve_publisher(connection, station_id)
            return await self._serve_client(connection, station_id)
        finally:
            del self.principals[connection]

    def forbid(self, connection, what: str, station_id) -> p.ProtocolError:
        """Log a refused action with who and what; the caller raises the returned error."""
        principal = self.principals.get(connection)
        who = f"{principal.sub} ({principal.role})" if principal else "unknown"
        log.warning(
            "FORBIDDEN: %s tried %s on station %s", who, what, station_id if station_id else "all"
        )
        return p.ProtocolError(f"{what}: not allowed for this token", p.FORBIDDEN)

    async def _frames(self, connection, role: str):
        """The connection's frames within its rate limit. Over it, a charger's frames wait (read
        later: TCP backpressure, nothing lost; its outbox replay fits in RATE_BURST) and a
        dashboard's are answered RATE_LIMITED; more than RATE_BURST over the limit in a row
        closes the connection with 1008 (a charger resends what was not confirmed)."""
        bucket = RateLimit(
            self.app.config.rate_limit, self.app.config.rate_burst, self.app.monotonic
        )
        async for frame in connection:
            if bucket.allow():
                yield frame
                continue
            self.app.note_error(p.RATE_LIMITED)
            if bucket.abusive:
                log.warning(
                    "closing %s (%s): sustained message rate above the limit",
                    _peer(connection),
                    role,
                )
                await connection.close(CLOSE_POLICY_VIOLATION, "message rate limit exceeded")
                return
            if role == p.ROLE_PUBLISHER:
                await asyncio.sleep(bucket.seconds_to_next())
                bucket.take_late()
                yield frame
            else:
                await self.hub.send(
                    connection, Refusal("too many messages; slow down", p.RATE_LIMITED)
                )

    async def _known_station(self, estacion: str) -> int | None:
        """The station id if it is in the database (refreshing name, tariff and max power in
        the core)."""
        station_id = station_number(estacion)
        if station_id is None:
            return None
        station = await self.storage.get_station(station_id)
        if station is None:
            return None
        self.core.add_station(station.id, station.name, station.tariff, station.max_power_w)
        return station.id

    # --- charger --------------------------------------------------------------------------------
    async def _serve_publisher(
        self, connection: ServerConnection, station_id: int, codec=SEED, reader=None
    ) -> None:
        """Serve a station's charger: `reader()` reads its messages (default: the seed's frames
        on `connection`); an OCPP charger's link brings its own (server/ocpp.py). In a fleet the
        station is claimed first: nothing (a dashboard's sync_request) reaches the charger
        before its `connected`."""
        if not await self._claim(connection, station_id):
            return
        previous = self.hub.set_publisher(station_id, connection, codec)
        if previous is not None:
            log.warning(
                "station %s: publisher %s replaced by a newer connection from %s (close %s)",
                station_id,
                _peer(previous),
                _peer(connection),
                p.CLOSE_PUBLISHER_REPLACED,
            )
            self._in_background(
                previous.close(p.CLOSE_PUBLISHER_REPLACED, "replaced by a newer connection")
            )
        try:
            await self.hub.send(connection, Welcome(station_id))
            if previous is None:
                await self.run_effects(
                    self.core.publisher_connected(station_id, self.clock()), connection
                )
            else:
                replaced = self.core.publisher_replaced(
                    station_id, self.clock(), _peer(previous), _peer(connection)
                )
                await self.run_effects(replaced, connection)
            if reader is None:
                if self.app.auth_lists.connected(station_id, self.principals.get(connection)):
                    # offline cards, signed: in the background, a failure logged (its storage
                    # calls must neither delay the first frame nor drop the charger)
                    self._in_background(self.app.auth_lists.push_logged(station_id))
                await self._read_publisher_frames(connection, station_id, codec)
            else:
                await reader()
        except ConnectionClosed:
            pass
        finally:
            if self.hub.remove_publisher(station_id, connection):
                left = self.clock()
                if self.app.auth_lists.gone(station_id, left):
                    self._in_background(self.app.auth_lists.record_gone(station_id, left))
                if self.app.fleet.release(station_id, connection):
                    await self.run_effects(self.core.publisher_gone(station_id, self.clock()), None)

    async def _claim(self, connection: ServerConnection, station_id: int) -> bool:
        """In a fleet, this process now owns the station (server/cluster/); a database that
        cannot record it closes the connection 1013 (the charger retries), a newer claim by
        another process 4008 (the charger is served there)."""
        try:
            if await self.app.fleet.claim(station_id):
                return True
            await connection.close(p.CLOSE_PUBLISHER_REPLACED, "station served by another server")
            return False
        except Exception:
            log.exception("station %s: could not claim it for this server", station_id)
            await connection.close(CLOSE_TRY_AGAIN_LATER, "server cannot take this station now")
            return False

    async def _read_publisher_frames(
        self, connection: ServerConnection, station_id: int, codec
    ) -> None:
        """Handle the charger's frames in order; acknowledge each once its writes are durable."""
        acks = AckSender(
            self.storage, lambda command: self.hub.send(connection, command), station_id
        )
        handle = self._publisher_frame(codec)
        self.ack_senders[connection] = acks
        try:
            async for frame in self._frames(connection, p.ROLE_PUBLISHER):
                k = acks.frame_read()
                await self._guarded(handle, station_id, frame, connection)
                acks.handled(k, self.storage.write_mark())
                if self.storage.full:  # back-pressure: read on once the readings are written
                    await self.storage.wait_for_room()
        finally:
            del self.ack_senders[connection]
            await acks.close()

    def _publisher_frame(self, codec):
        """The handler of one charger frame in `codec`'s protocol: decode, count, translate
        into a neutral event, let the core decide, run the effects."""

        async def handle(station_id: int, frame, connection) -> None:
            data = codec.decode(frame)
            self.app.note_message(p.ROLE_PUBLISHER, codec.kind(data))
            if codec is SEED and await self.app.firmware.from_charger(station_id, data, connection):
                return  # update_result: server/firmware.py's alone
            event = codec.event(data)
            if isinstance(event, CardRead):
                event = await self._card_presented(station_id, event)
            elif isinstance(event, OfflineStartReport):
                event = await self._offline_start(station_id, event)
            await self.run_effects(
                self.core.handle_publisher(station_id, event, self.clock()), connection
            )

        return handle

    async def _card_presented(self, station_id: int, read: CardRead) -> c.CardPresented:
        try:
            uid = normalize_uid(read.uid)
        except InvalidUid as problem:
            raise p.ProtocolError(f"nfc_scan.nfc_uid: {problem}") from None
        card = await self.storage.find_card(uid)
        station = await self.storage.get_station(station_id)
        return c.CardPresented(uid, card, station.tariff if station is not None else None)

    async def _offline_start(
        self, station_id: int, report: OfflineStartReport
    ) -> OfflineStartPresented:
        """Look up what the core needs to judge an offline start (server/offline_auth.py)."""
        try:
            uid = normalize_uid(report.uid)
        except InvalidUid as problem:
            raise p.ProtocolError(f"offline_start.uid: {problem}") from None
        card = await self.storage.find_card(uid)
        listed, earliest = await self.app.auth_lists.check(station_id, report.version, uid)
        existing = await self.storage.offline_session(station_id, report.local_id)
        station = await self.storage.get_station(station_id)
        return OfflineStartPresented(
            report.local_id,
            uid,
            card,
            listed,
            earliest,
            existing,
            report.ts,
            report.wh,
            station.tariff if station is not None else None,
        )

    # --- dashboard ------------------------------------------------------------------------------
    async def _serve_client(self, connection: ServerConnection, station_id: int | None) -> None:
        if station_id is None:
            for station in await self.storage.list_stations():  # incl. ones added while running
                self.core.add_station(station.id, station.name, station.tariff, station.max_power_w)
        self.hub.subscribe(station_id, connection)
        try:
            if station_id is None:
                await send(connection, p.subscribed(p.ALL_STATIONS))
                await send(connection, p.init_all(await self.app.fleet.describe_all()))
            else:
                await send(connection, p.subscribed(str(station_id)))
                await send(connection, p.init_one(await self.app.fleet.describe(station_id)))
                if not await self.hub.send_to_publisher(station_id, RequestStatus()):
                    self.app.fleet.request_status(station_id)  # a charger on another process
            async for frame in self._frames(connection, p.ROLE_CLIENT):
                await self._guarded(self._client_frame, station_id, frame, connection)
        except ConnectionClosed:
            pass
        finally:
            self.hub.unsubscribe(station_id, connection)

    async def _client_frame(self, station_id: int | None, frame, connection) -> None:
        data = p.decode_frame(frame)
        self.app.note_message(p.ROLE_CLIENT, data["type"])
        extra = self.app.client_handlers.get(data["type"])
        if extra is not None:  # messages added by other modules (e.g. dashboard administration)
            return await extra(self.app, connection, station_id, data)
        message = p.parse_client_message(data)
        if not self.principals[connection].may_stop:
            raise self.forbid(connection, f"remote {data['type']}", station_id)
        if await self.app.fleet.forward_stop(station_id, message, connection):
            return  # its charger is on another process of the fleet, which answered
        await self.run_effects(
            self.core.dashboard_stop(station_id, message, self.clock()), connection
        )

    async def _guarded(self, handle, station_id, frame, connection) -> None:
        """Handle one frame; a bad frame or a failure answers `error`, never ends the loop."""
        try:
            await handle(station_id, frame, connection)
        except p.ProtocolError as problem:
            self.app.note_error(problem.code)
            await self.hub.send(connection, Refusal(problem.message, problem.code))
        except ConnectionClosed:
            raise
        except Exception:
            log.exception("failed to handle a frame from station %s", station_id)
            self.app.note_error(p.SERVER_ERROR)
            await self.hub.send(connection, Refusal("Error interno del servidor", p.SERVER_ERROR))

    def _in_background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def wait_background(self) -> None:
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.effects.wait_retries()

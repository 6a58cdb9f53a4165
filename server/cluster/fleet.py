"""One server process's part in a fleet: ownership, fan-out, remote commands, shared status.

`Fleet.start(app, nats_url, database_url, server_id)` joins the fleet; the adapters call a few
hooks, which the single-process `Solo` (server/cluster/__init__.py) answers trivially:

- `claim(station_id)`: this process now holds the station's charger socket. The station is
  claimed (an epoch from the storage's `claim_station`, then the shared row of
  server/cluster/presence.py at that epoch), its state is reloaded from the database unless
  this process held it at the epoch just before (anyone else may have served it meanwhile,
  whether or not this process heard of it: open session, recent sessions, emergency latch),
  its command subject answered here, and the claim announced on the bus so a previous owner
  drops its connection. False when a newer claim by another process reached the shared row
  first (the two claims raced): the station stays the other's, this process lets go of it.
- `release(station_id, connection)`: the charger's socket ended; False when it ended because
  another process claimed the station (the core then forgets the station quietly: no
  `desconectado` is pushed for a charger that is online elsewhere).
- pushes: the hub calls `relay(station_id, text)` for every dashboard message it broadcasts;
  the text goes on `evse.station.<id>.push` and every other process hands it to its own
  dashboards (`hub.deliver`). A status or session change of a station this process owns is
  written to its shared row within WRITE_INTERVAL_S; a `metrics` push (up to several a second
  per charger) only with the next heartbeat, so `init` elsewhere shows a session's kWh at most
  one heartbeat old and the database gets no write per reading.
- `forward_stop(...)`, `request_status(...)`: a dashboard's stop or a subscription's
  `sync_request` for a charger served elsewhere is a NATS request to its owner; nobody
  answering is `ESP32 no conectado` (CHARGER_OFFLINE) at once.
- `forward(station_id, command)`: any other dashboard call that needs the charger (an OCPP
  remote start or configuration call, a firmware update order) for a charger served elsewhere
  goes to its owner the same way; the owner runs it with `app.owner_calls[type]` (registered
  by the modules that own the calls) and its answer, `{"result":...}` or `{"error":...}`, is
  what the dashboard gets. Authorization stays with the process the dashboard is on.
- `station_changed(station_id)`: an administrator changed a station here (tariff, max power,
  offline setting); its owner elsewhere takes it into its core and pushes its charger's list
  now (`owner_calls["station_changed"]`), not at the charger's next connect.
  `cards_changed()`: a card changed here; every process pushes its chargers' lists now.
- `describe(...)`, `describe_all()`, `views()`: `init` and `/api/stations` from the shared
  rows, the local core only for the stations whose charger is here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime

import asyncpg

from server import protocol as p
from server.cluster import FleetUnavailable
from server.cluster import bus as b
from server.cluster.bus import Bus
from server.cluster.presence import HEARTBEAT_S, Presence
from server.core import RECENT_SESSIONS
from server.vocabulary import (
    CHARGER_OFFLINE,
    INVALID_MESSAGE,
    SERVER_ERROR,
    Refusal,
    RemoteStop,
    RequestStatus,
)

log = logging.getLogger(__name__)

WRITE_INTERVAL_S = 0.25  # a station's changed description reaches its shared row this fast
OFFLINE = "ESP32 no conectado"


class Collector:
    """Where the owner's replies to a forwarded command go: the hub sends to it like to a
    dashboard connection, and the texts travel back in the NATS answer."""

    def __init__(self):
        self.texts: list[str] = []

    async def send(self, text: str) -> None:
        self.texts.append(text)


class Fleet:
    clustered = True

    def __init__(
        self, app, bus: Bus, presence: Presence, server_id: str, heartbeat_s: float = HEARTBEAT_S
    ):
        self.app = app
        self.bus = bus
        self.presence = presence
        self.server_id = server_id
        self.heartbeat_s = heartbeat_s
        # station -> the epoch of this process's last claim of it (granted by the storage; the
        # shared row's too), kept after the station was lost: this process's writes carry it
        self.epochs: dict[int, int] = {}
        self.held: set[int] = set()  # the stations this process owns now
        self.dirty: set[int] = set()  # held stations whose shared row is behind (status, session)
        self.metered: set[int] = set()  # held stations with newer metrics than their row
        self.lost: set = set()  # charger connections closed because another process claimed
        self.commands: dict[int, object] = {}  # station -> its command subscription
        self._subscriptions: list = []
        self._writer: asyncio.Task | None = None

    @classmethod
    async def start(
        cls,
        app,
        nats_url: str,
        database_url: str,
        server_id: str,
        heartbeat_s: float = HEARTBEAT_S,
        expiry_s: float | None = None,
    ) -> Fleet:
        try:
            presence = await (
                Presence.open(database_url)
                if expiry_s is None
                else Presence.open(database_url, expiry_s)
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
            raise FleetUnavailable(
                f"cannot reach PostgreSQL for the shared station status: {problem}"
            ) from None
        try:
            bus = await Bus.connect(nats_url, server_id)
        except BaseException:
            await presence.close()
            raise
        fleet = cls(app, bus, presence, server_id, heartbeat_s)
        fleet._subscriptions = [
            await bus.subscribe(b.ALL_PUSHES, fleet._on_push),
            await bus.subscribe(b.ALL_CLAIMS, fleet._on_claimed),
            await bus.subscribe(b.CARDS_CHANGED, fleet._on_cards_changed, per_station=False),
        ]
        app.hub.relay = fleet.relay
        fleet._writer = asyncio.create_task(fleet._keep_rows(), name="fleet-rows")
        log.info("joined the fleet as %s (NATS %s)", server_id, nats_url)
        return fleet

    async def close(self) -> None:
        self.app.hub.relay = None
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        try:
            await self._write_dirty()
        except Exception:  # noqa: BLE001 - the rows expire by themselves
            log.warning("could not write the stations' last status on the way out")
        await self.bus.close()
        await self.presence.close()

    # --- ownership ----------------------------------------------------------------------------
    async def claim(self, station_id: int) -> bool:
        if not await self._still_mine(station_id):
            granted = await self.app.storage.claim_station(station_id, self.server_id)
            won = await self.presence.claim(station_id, self.server_id, granted)
            # read after the claims: a loss learnt meanwhile (write refused, `claimed`) counts;
            # until now this process's writes carried the epoch its shared row had
            previous = self.epochs.get(station_id) if station_id in self.held else None
            self.epochs[station_id] = granted  # this process's writes carry it from now on
            if not won:
                self._lose(station_id, f"a newer claim than this one (epoch {granted}) won")
                log.warning(
                    "station %s: claimed by another process after this one (epoch %s); "
                    "this connection is closed as replaced",
                    station_id,
                    granted,
                )
                return False
            if previous is None or granted - 1 != previous:
                await self._reload(station_id)  # someone else held it in between
            self.held.add(station_id)
            self.bus.publish(
                b.claimed_subject(station_id),
                json.dumps({"owner": self.server_id, "epoch": granted}).encode(),
            )
            log.info("station %s claimed by %s (epoch %s)", station_id, self.server_id, granted)
        if station_id not in self.commands:
            self.commands[station_id] = await self.bus.connection.subscribe(
                b.command_subject(station_id), cb=self._command_handler(station_id)
            )
        self.dirty.add(station_id)
        return True

    async def _still_mine(self, station_id: int) -> bool:
        """The charger reconnected to this process, which still owns its station: the epoch
        stays (a new one would refuse this process's own writes still in flight)."""
        epoch = self.epochs.get(station_id)
        if station_id not in self.held or epoch is None:
            return False
        return await self.app.storage.station_owner(station_id) == (self.server_id, epoch)

    async def _reload(self, station_id: int) -> None:
        """The station's state as the database has it (another process may have served it)."""
        open_session, recent, latched = await self.app.storage.station_as_stored(
            station_id, RECENT_SESSIONS
        )
        self.app.core.reload_station(station_id, open_session, recent, latched)
        if open_session is not None:
            log.info(
                "station %s: continuing session %s (%.3f kWh so far)",
                station_id,
                open_session.id,
                open_session.kwh,
            )

    def epoch(self, station_id: int | None) -> int | None:
        """The storage epoch this process's writes for the station carry: the one of its last
        claim, kept after the station was lost, so the storage refuses them (StaleOwner) once
        another process claimed it. None (unfenced) for a station never claimed here."""
        return self.epochs.get(station_id)

    def stale(self, station_id: int, refused) -> None:
        """The storage refused one of this process's writes for the station (StaleOwner)."""
        self._lose(station_id, f"the storage refused a write ({refused})")

    def release(self, station_id: int, connection) -> bool:
        """The charger's connection ended; False when another process holds the station now."""
        if connection in self.lost:
            self.lost.discard(connection)
            self.app.core.station_left(station_id)
            return False
        self._stop_commands(station_id)
        self.dirty.add(station_id)
        return True

    def owns(self, station_id: int) -> bool:
        """This process holds the station's claim (what only the owner does: the offline card
        list, server/offline_auth.py)."""
        return station_id in self.held

    def _lose(self, station_id: int, why: str) -> None:
        """Another process claimed the station: drop what this process still has of it."""
        if station_id not in self.held:
            return
        self.held.discard(station_id)
        self.dirty.discard(station_id)
        self.metered.discard(station_id)
        self._stop_commands(station_id)
        connection = self.app.hub.publishers.get(station_id)
        log.warning(
            "station %s: %s; this process (%s) lets go of it", station_id, why, self.server_id
        )
        if connection is None:
            self.app.core.station_left(station_id)
            return
        self.lost.add(connection)
        self.app.handler._in_background(
            connection.close(p.CLOSE_PUBLISHER_REPLACED, "station served by another server")
        )

    def _stop_commands(self, station_id: int) -> None:
        subscription = self.commands.pop(station_id, None)
        if subscription is not None:
            self.app.handler._in_background(subscription.unsubscribe())

    async def _on_claimed(self, station_id: int, msg) -> None:
        claim = json.loads(msg.data)
        if (
            claim.get("owner") != self.server_id
            and station_id in self.held
            and claim.get("epoch", 0) > self.epochs[station_id]
        ):
            self._lose(station_id, f"claimed by {claim.get('owner')} (epoch {claim.get('epoch')})")

    # --- fan-out ------------------------------------------------------------------------------
    def relay(self, station_id: int, text: str, kind: str | None = None) -> None:
        """A dashboard message (of type `kind`) the hub broadcast here: to every other
        process's dashboards. A held station's shared row follows: a status or session change
        soon, a reading with the next heartbeat."""
        self.bus.publish(b.push_subject(station_id), text.encode())
        if station_id in self.held:
            (self.metered if kind == "metrics" else self.dirty).add(station_id)

    async def _on_push(self, station_id: int, msg) -> None:
        self.app.hub.deliver(station_id, msg.data.decode())

    # --- commands -----------------------------------------------------------------------------
    def _command_handler(self, station_id: int):
        async def answer(msg) -> None:
            try:
                reply = await self._answer(station_id, msg.data)
            except Exception:
                log.exception("station %s: a command from another process failed", station_id)
                reply = _error("the server serving the charger failed", SERVER_ERROR)
            if msg.reply:
                await msg.respond(json.dumps(reply).encode())

        async def handle(msg) -> None:
            # each in its own task, as each dashboard has its own socket on one server: a call
            # waiting for the charger (an OCPP call, up to 30 s) holds up no stop behind it
            self.app.handler._in_background(answer(msg))

        return handle

    async def _answer(self, station_id: int, data: bytes) -> dict:
        """Run one command of the vocabulary (server/cluster/bus.py) for a station held here."""
        try:
            command = json.loads(data)
        except ValueError:
            command = None
        kind = command.get("type") if isinstance(command, dict) else None
        if kind == "stop":
            collector = Collector()
            stop = RemoteStop(command.get("session_id"), command.get("charger_id"))
            effects = self.app.core.dashboard_stop(station_id, stop, self.app.clock())
            await self.app.effects.run(effects, collector)
            return {"replies": collector.texts}
        if kind == "sync_request":
            await self.app.hub.send_to_publisher(station_id, RequestStatus())
            return {"replies": []}
        call = self.app.owner_calls.get(kind) if isinstance(kind, str) else None
        if call is None:
            log.warning("station %s: unknown command %.40r from another process", station_id, kind)
            return _error(f"unknown command {kind!r}", INVALID_MESSAGE)
        return await call(self.app, station_id, command)

    async def forward(
        self, station_id: int, command: dict, timeout: float = b.REQUEST_TIMEOUT_S
    ) -> dict | None:
        """A dashboard call that needs the station's charger: None when the charger is here
        (the caller runs it), else the answer of the process serving it, {"result":{...}} or
        {"error":{"message","code"}}; nobody answering within `timeout` is CHARGER_OFFLINE."""
        if self.app.hub.has_publisher(station_id):
            return None
        answer = await self.bus.request(b.command_subject(station_id), command, timeout)
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            return _error(OFFLINE, CHARGER_OFFLINE)
        return answer

    async def station_changed(self, station_id: int) -> None:
        """An administrator changed the station here: its owner elsewhere takes the change now
        (it answers once done; nobody answering: no charger is served, its next connect loads
        the station from the database)."""
        if not self.app.hub.has_publisher(station_id):
            await self.bus.request(b.command_subject(station_id), {"type": "station_changed"})

    def cards_changed(self) -> None:
        """A card changed here: every other process pushes its chargers' lists."""
        self.bus.publish(b.CARDS_CHANGED, b"{}")

    async def _on_cards_changed(self, _station_id, msg) -> None:
        await self.app.auth_lists.push_all()

    async def forward_stop(self, station_id: int | None, stop: RemoteStop, connection) -> bool:
        """A dashboard's stop for a charger served by another process: ask its owner and pass
        the answer on. False when the charger is here (or the station unknown): the local core
        decides."""
        target = station_id or stop.charger_id or await self._station_of_session(stop.session_id)
        if target is None or self.app.hub.has_publisher(target):
            return False
        answer = await self.bus.request(
            b.command_subject(target),
            {"type": "stop", "session_id": stop.session_id, "charger_id": stop.charger_id},
        )
        if answer is None:
            self.app.note_error(CHARGER_OFFLINE)
            await self.app.hub.send(connection, Refusal(OFFLINE, CHARGER_OFFLINE))
            return True
        error = answer.get("error")
        if isinstance(error, dict):  # the owner failed to run it (SERVER_ERROR)
            code = str(error.get("code"))
            self.app.note_error(code)
            await self.app.hub.send(connection, Refusal(str(error.get("message")), code))
            return True
        for text in answer.get("replies", []):
            await connection.send(text)
        return True

    async def _station_of_session(self, session_id: int | None) -> int | None:
        if session_id is None:
            return None
        session = await self.app.storage.get_session(session_id)
        return session.station_id if session is not None else None

    def request_status(self, station_id: int) -> None:
        """A dashboard subscribed to a station whose charger may be on another process."""
        if not self.app.hub.has_publisher(station_id):
            self.bus.publish(b.command_subject(station_id), b'{"type":"sync_request"}')

    def health(self) -> dict:
        """What /healthz adds in a fleet: who this process is, whether it hears the bus."""
        return {
            "server_id": self.server_id,
            "nats_connected": self.bus.connection.is_connected,
            "stations_owned": len(self.held),
        }

    # --- shared status ------------------------------------------------------------------------
    async def views(self, only: int | None = None) -> dict[int, dict]:
        """station -> its live `charger` description, wherever its charger is (all stations,
        or `only` that one)."""
        rows = await self.presence.views(only)
        core, now = self.app.core, self.app.clock()
        result = {}
        for station_id in (set(rows) | set(core.stations)) if only is None else {only}:
            row = rows.get(station_id)
            here = station_id in self.held and self.app.hub.has_publisher(station_id)
            if here or row is None or row["view"] is None:
                if station_id in core.stations:
                    result[station_id] = core.describe(station_id, now)
                continue
            view = dict(row["view"])
            if not (row["fresh"] and row["online"]):
                view["status"] = "desconectado"
            if view.get("session"):
                view["session"] = _aged(view["session"], now)
            result[station_id] = view
        return result

    async def describe(self, station_id: int) -> dict:
        view = (await self.views(station_id)).get(station_id)
        return view or self.app.core.describe(station_id, self.app.clock())

    async def describe_all(self) -> list[dict]:
        views = await self.views()
        return [
            {**views.get(sid, {}), **{"id": sid}, "name": station.name}
            if sid in views
            else {**self.app.core.describe(sid, self.app.clock()), "name": station.name}
            for sid, station in sorted(self.app.core.stations.items())
        ]

    async def _keep_rows(self) -> None:
        """Write the held stations' changed descriptions; on each heartbeat also the ones whose
        readings moved on, and touch the rest."""
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(WRITE_INTERVAL_S)
            try:
                beat = time.monotonic() - last_beat >= self.heartbeat_s
                if beat:
                    last_beat = time.monotonic()
                    self.dirty |= self.metered  # the heartbeat carries the sessions' kWh
                written = await self._write_dirty()
                if beat:
                    held = {s: self.epochs[s] for s in self.held if s not in written}
                    for station_id in await self.presence.heartbeat(self.server_id, held):
                        self._lose(station_id, "its shared row names another owner")
            except asyncio.CancelledError:
                raise
            except Exception as problem:  # noqa: BLE001 - the database may come back
                log.warning("could not update the shared station status: %s", problem)

    async def _write_dirty(self) -> set[int]:
        """The changed stations' descriptions, all in one statement; returns the stations
        written (their heartbeat with them)."""
        core, now = self.app.core, self.app.clock()
        dirty, self.dirty = self.dirty, set()
        self.metered -= dirty  # their whole description goes now
        rows = [
            (
                station_id,
                self.epochs[station_id],
                core.stations[station_id].publisher_connected,
                core.describe(station_id, now),
            )
            for station_id in dirty
            if station_id in self.held and station_id in core.stations
        ]
        try:
            lost = await self.presence.write_many(self.server_id, rows)
        except BaseException:
            self.dirty |= dirty
            raise
        for station_id in lost:
            self._lose(station_id, "another process claimed it")
        return {row[0] for row in rows} - lost


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "code": code}}


def _aged(session: dict, now: float) -> dict:
    """A stored session view with `time` counted to now."""
    try:
        started = datetime.fromisoformat(session["timestamp"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return session
    return {**session, "time": int(max(0.0, now - started))}

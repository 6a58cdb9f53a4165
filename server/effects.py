"""The effect runner: carries out what the session core and the admin handlers decided.

`EffectRunner.run(effects, origin)` executes effects in order (server/core.py defines them):
a neutral command to a charger through the hub, which encodes it in the charger's protocol; a
push to dashboards; a refusal to the connection that caused the effects (`origin`); writes
through Storage; a station's changed settings into the core. It is the only place that writes
sessions, readings, alerts and latches to Storage for the live traffic. It knows no wire
format and imports no websockets: whatever a connection closing raises is given by the adapter
(`passthrough`), and the connections are opaque objects the hub sends to.

A write the storage refuses as StaleOwner (a fleet: another server process claimed the station
since) is not retried: the fleet lets go of the station (server/cluster/fleet.py), whose charger
replays what was not acknowledged to its new process. Any other failed write is logged and the rest still runs: the charger and the dashboards must hear
about a stop or an emergency even if the disk is full; the charger frame that caused it is
then never acknowledged (`AckSender.hold()`, server/acks.py). A session end the database
refused is retried with backoff until it is stored (`retries`), since the core has already
closed the session. A session's creation is shielded from the cancellation of the handling
that asked for it: its outcome still reaches the core (`settling`; `SessionCore.session_orphaned`
ends a tap's session nobody was told of), so no session stays open unknown to the core and no
station stays `starting`.
"""

from __future__ import annotations

import asyncio
import logging

from server import core as c
from server.storage.errors import StaleOwner
from server.storage.records import Reading
from server.vocabulary import SERVER_ERROR, Refusal

log = logging.getLogger(__name__)

# a session end the database refused (disk full, read-only) is retried every 0.5 s .. 30 s
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


class EffectRunner:
    """One per running server. `ack_senders` maps a charger connection to its AckSender (held
    when an effect its frame caused fails); `passthrough` are the exceptions that end a
    connection's loop, re-raised as they come."""

    def __init__(self, app, ack_senders: dict, passthrough: tuple = ()):
        self.app = app
        self.core = app.core
        self.hub = app.hub
        self.storage = app.storage
        self.ack_senders = ack_senders
        self.passthrough = passthrough
        self.retries: set[asyncio.Task] = set()  # session ends the database refused, retried
        self.settling: set[asyncio.Task] = set()  # session starts whose handling was cancelled
        self._runners = {
            c.ToCharger: self._to_charger,
            c.ToClients: self._to_clients,
            c.Reply: self._reply,
            c.CreateSession: self._create_session,
            c.QueueReading: self._queue_reading,
            c.QueueProgress: self._queue_progress,
            c.EndSession: self._end_session,
            c.AddAlert: self._add_alert,
            c.SetEmergencyLatch: self._set_emergency_latch,
            c.UpdateStation: self._update_station,
        }

    async def run(self, effects: list, origin) -> None:
        """Carry out effects in order; a failure is logged and the rest still runs."""
        for effect in effects:
            try:
                await self._runners[type(effect)](effect, origin)
            except self.passthrough:
                raise
            except StaleOwner as refused:
                # the rest (a session_ended push, a stop to the charger) is not this process's
                # to say any more: the station's new process decides
                log.warning(
                    "station %s is served by another process now: %s; %d effects dropped",
                    getattr(effect, "station_id", "?"),
                    refused,
                    len(effects) - effects.index(effect) - 1,
                )
                if origin in self.ack_senders:
                    self.ack_senders[origin].hold()
                return
            except Exception:
                log.exception("effect %s failed", type(effect).__name__)
                self.app.note_error(SERVER_ERROR)
                if origin in self.ack_senders:
                    self.ack_senders[origin].hold()

    async def _to_charger(self, effect: c.ToCharger, origin) -> None:
        await self.hub.send_to_publisher(effect.station_id, effect.command)

    async def _to_clients(self, effect: c.ToClients, origin) -> None:
        self.hub.broadcast(effect.station_id, effect.message)

    async def _reply(self, effect: c.Reply, origin) -> None:
        if isinstance(effect.command, Refusal):
            self.app.note_error(effect.command.code)
        if origin is not None:
            await self.hub.send(origin, effect.command)

    async def _create_session(self, effect: c.CreateSession, origin) -> None:
        # The database call is shielded: a cancellation of this handling (its connection's
        # task, a shutdown that cancels what is left) must neither cut a commit half-way
        # (asyncpg) nor lose the id of a session that was committed (SQLite's thread finishes
        # what it started): the outcome still reaches the core (`_settle`).
        creating = asyncio.ensure_future(self._store_session_start(effect))
        try:
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            task = asyncio.create_task(self._settle(creating, effect))
            self.settling.add(task)
            task.add_done_callback(self.settling.discard)
            raise
        except Exception:  # noqa: BLE001 - the store's refusal: `_stored` tells the core
            pass
        await self._stored(creating, effect, origin, orphaned=False)

    async def _store_session_start(self, effect: c.CreateSession) -> int:
        return await self.storage.create_session(
            effect.station_id,
            effect.user_id,
            effect.card_uid,
            effect.started_at,
            effect.tariff,
            effect.energy_state,
            epoch=self.app.fleet.epoch(effect.station_id),
            offline_local_id=effect.offline_local_id,
        )

    async def _settle(self, creating: asyncio.Future, effect: c.CreateSession) -> None:
        """The handling that asked for a session was cancelled while the database stored it:
        give the core the outcome, so the station is not left `starting` (refusing every tap)
        nor the session open in the database with nobody knowing of it."""
        try:
            await creating
        except asyncio.CancelledError:
            log.error(
                "station %s: a session's creation was cancelled with its database call; if it "
                "was stored it is reloaded as open at the next start and the charger's status "
                "closes it",
                effect.station_id,
            )
            raise
        except Exception:  # noqa: BLE001 - the store's refusal: `_stored` tells the core
            pass
        await self._stored(creating, effect, None, orphaned=True)

    async def _stored(
        self, creating: asyncio.Future, effect: c.CreateSession, origin, orphaned: bool
    ) -> None:
        """The core learns how a session's creation ended: created (or, when the handling that
        asked for it was cancelled meanwhile, `orphaned`), or refused."""
        try:
            session_id = creating.result()
        except StaleOwner as refused:
            self.app.fleet.stale(effect.station_id, refused)
            return await self.run(self.core.session_create_failed(effect), origin)
        except Exception:
            log.exception("could not create a session on station %s", effect.station_id)
            return await self.run(self.core.session_create_failed(effect), origin)
        if not orphaned:
            return await self.run(self.core.session_created(effect, session_id), origin)
        log.warning(
            "station %s: session %s was stored after the handling of its start was cancelled; %s",
            effect.station_id,
            session_id,
            "the charger's offline start keeps it open"
            if effect.offline_local_id is not None
            else f"its start never reached the charger: ended at once ({c.START_INTERRUPTED})",
        )
        await self.run(self.core.session_orphaned(effect, session_id, self.app.clock()), None)

    async def _queue_reading(self, effect: c.QueueReading, origin) -> None:
        self.storage.queue_reading(
            Reading(
                effect.session_id,
                effect.ts,
                effect.v,
                effect.a,
                effect.w,
                effect.wh,
                effect.kwh,
                effect.charger_ts,
                effect.received_at,
                effect.flag,
            )
        )
        self.app.note_reading()

    async def _queue_progress(self, effect: c.QueueProgress, origin) -> None:
        self.storage.queue_progress(
            effect.session_id,
            effect.kwh,
            effect.cost,
            effect.energy_state,
            epoch=self.app.fleet.epoch(effect.station_id),
        )

    async def _end_session(self, effect: c.EndSession, origin) -> None:
        try:
            await self._store_session_end(effect)
        except StaleOwner as refused:
            # another server process serves the station now: it ends the session, not this one
            self.app.fleet.stale(effect.station_id, refused)
            raise  # run() logs it; the charger's frame is not acknowledged (it replays it there)
        except Exception:
            # The core has already closed the session (the charger and the dashboards are told
            # at once): the row must follow, so keep trying until the database takes it.
            task = asyncio.create_task(self._retry_session_end(effect))
            self.retries.add(task)
            task.add_done_callback(self.retries.discard)
            raise  # run() logs it; the charger's frame is not acknowledged

    async def _store_session_end(self, effect: c.EndSession) -> None:
        await self.storage.end_session(
            effect.session_id,
            effect.ended_at,
            effect.kwh,
            effect.cost,
            effect.reason,
            effect.energy_state,
            epoch=self.app.fleet.epoch(effect.station_id),
        )

    async def _retry_session_end(self, effect: c.EndSession) -> None:
        """Store a session's end that failed, retrying with backoff (the end is idempotent)."""
        delay, attempts = RETRY_MIN_S, 1
        while True:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await self._store_session_end(effect)
            except Exception as problem:  # noqa: BLE001 - the disk may come back: keep trying
                delay = min(delay * 2, RETRY_MAX_S)
                log.debug("session %s end still not stored: %s", effect.session_id, problem)
                continue
            log.warning(
                "stored the end of session %s (%s, %.3f kWh) after %d attempts",
                effect.session_id,
                effect.reason,
                effect.kwh,
                attempts,
            )
            return

    async def _add_alert(self, effect: c.AddAlert, origin) -> None:
        await self.storage.add_alert(
            effect.station_id, effect.session_id, effect.kind, effect.created_at, effect.detail
        )

    async def _set_emergency_latch(self, effect: c.SetEmergencyLatch, origin) -> None:
        try:
            await self.storage.set_emergency_latch(
                effect.station_id, effect.latched_at, epoch=self.app.fleet.epoch(effect.station_id)
            )
        except StaleOwner as refused:
            self.app.fleet.stale(effect.station_id, refused)
            raise

    async def _update_station(self, effect: c.UpdateStation, origin) -> None:
        await self.run(self.core.update_station(effect), origin)

    async def wait_retries(self) -> None:
        """Shutting down: the session starts whose handling was cancelled settle first (their
        end is written); the session ends the database still refuses are given up."""
        if self.settling:
            await asyncio.gather(*self.settling, return_exceptions=True)
        for task in self.retries:
            log.error(
                "shutting down with a session end not stored (the session is reloaded as "
                "open at the next start and the charger's status closes it)"
            )
            task.cancel()
        await asyncio.gather(*self.retries, return_exceptions=True)

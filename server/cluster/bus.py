"""The NATS bus between the server processes of one fleet: subjects and a thin client.

Facts live in PostgreSQL; the bus only carries notifications and requests, so a message lost
on it never loses a session or a reading. Subjects (one station per subject, so a subscriber
can narrow down later without a protocol change):

    evse.station.<id>.push      a dashboard message of station <id>, as its JSON text
    evse.station.<id>.command   a request to the owner of <id> (the process serving its
                                charger), in one vocabulary (server/cluster/fleet.py):
                                {"type":"stop",...} and {"type":"sync_request"}, answered
                                {"replies":[text,...]}; {"type":"station_changed"}; a dashboard
                                call that needs the charger ({"type":"remote_start",...},
                                "admin_update_firmware", the OCPP configuration calls), answered
                                {"result":{...}} or {"error":{"message","code"}}
    evse.station.<id>.claimed   {"owner": SERVER_ID, "epoch": N}: <id>'s charger is now served
                                by that process; any other process drops its connection
    evse.fleet.cards_changed    {}: a card was added, enabled or disabled; every process pushes
                                its chargers' offline card lists again

The connection is opened with `no_echo`: a process never receives what it published itself
(no echo of its own pushes to its own dashboards). Publishing keeps order: pushes go through
one queue and one task, so dashboards on other processes see a station's messages in the
order its owner produced them.
"""

from __future__ import annotations

import asyncio
import json
import logging

import nats
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from server.cluster import FleetUnavailable

log = logging.getLogger(__name__)

PREFIX = "evse.station"
ALL_PUSHES = f"{PREFIX}.*.push"
ALL_CLAIMS = f"{PREFIX}.*.claimed"
CARDS_CHANGED = "evse.fleet.cards_changed"
# a dashboard's command waits at most this long for the owner's answer (the owner answers in
# milliseconds; a process that stopped answering is treated as no owner: CHARGER_OFFLINE)
REQUEST_TIMEOUT_S = 2.0
START_ATTEMPTS = 3  # at start, NATS unreachable after this many tries stops the process
PUBLISH_QUEUE = 10_000  # pushes waiting for the bus; beyond it the oldest are dropped (logged)


def push_subject(station_id: int) -> str:
    return f"{PREFIX}.{station_id}.push"


def command_subject(station_id: int) -> str:
    return f"{PREFIX}.{station_id}.command"


def claimed_subject(station_id: int) -> str:
    return f"{PREFIX}.{station_id}.claimed"


def station_of(subject: str) -> int | None:
    """The station id in `evse.station.<id>.<kind>`, None if the subject is not one of ours."""
    parts = subject.split(".")
    if len(parts) != 4 or not parts[2].isdecimal():
        return None
    return int(parts[2])


class Bus:
    """One NATS connection of a server process."""

    def __init__(self, connection, server_id: str):
        self.connection = connection
        self.server_id = server_id
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_in_order(), name="bus-publisher")
        self.dropped = 0

    @classmethod
    async def connect(cls, url: str, server_id: str) -> Bus:
        async def disconnected():
            log.warning("NATS connection lost; reconnecting (pushes to other processes wait)")

        async def reconnected():
            log.warning("NATS connection back")

        async def error(problem):
            log.warning("NATS: %s", problem)

        try:
            connection = await nats.connect(
                url.split(","),
                name=server_id,
                no_echo=True,
                allow_reconnect=True,
                max_reconnect_attempts=START_ATTEMPTS,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        except (TimeoutError, OSError, NatsError) as problem:
            raise FleetUnavailable(
                f"cannot reach NATS at {url}: {problem or type(problem).__name__}"
            ) from None
        # joined: from now on a lost NATS server is waited for, however long it takes
        connection.options["max_reconnect_attempts"] = -1
        return cls(connection, server_id)

    # --- notifications ------------------------------------------------------------------------
    def publish(self, subject: str, payload: bytes) -> None:
        """Queue a message; never blocks the caller, keeps the order of calls."""
        if self._outbox.qsize() >= PUBLISH_QUEUE:
            self._outbox.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.warning("bus: %d pushes dropped (NATS too slow or unreachable)", self.dropped)
        self._outbox.put_nowait((subject, payload))

    async def _send_in_order(self) -> None:
        while True:
            subject, payload = await self._outbox.get()
            try:
                await self.connection.publish(subject, payload)
            except Exception as problem:  # noqa: BLE001 - a notification lost is logged, not fatal
                log.warning("bus: could not publish on %s: %s", subject, problem)

    async def subscribe(self, subject: str, handler, per_station: bool = True):
        """`handler(station_id, msg)` for every message on `subject` (a wildcard is fine);
        `per_station=False`: a fleet-wide subject, `handler(None, msg)`."""

        async def deliver(msg):
            station_id = station_of(msg.subject)
            if station_id is None and per_station:
                return
            try:
                await handler(station_id, msg)
            except Exception:
                log.exception("bus: handling a message on %s failed", msg.subject)

        return await self.connection.subscribe(subject, cb=deliver)

    async def request(
        self, subject: str, payload: dict, timeout: float = REQUEST_TIMEOUT_S
    ) -> dict | None:
        """Ask whoever answers `subject`; None when nobody does (no responder, or no answer
        within `timeout`)."""
        try:
            answer = await self.connection.request(
                subject, json.dumps(payload).encode(), timeout=timeout
            )
        except NoRespondersError:
            return None
        except NatsTimeout:
            log.warning("bus: no answer on %s within %.1f s", subject, timeout)
            return None
        except NatsError as problem:  # the bus is closed or reconnecting: nobody can answer
            log.warning("bus: cannot ask on %s: %s", subject, problem or type(problem).__name__)
            return None
        try:
            return json.loads(answer.data)
        except ValueError:
            log.warning("bus: unreadable answer on %s", subject)
            return None

    async def flush(self) -> None:
        """Wait until every queued publication went to the NATS server."""
        while not self._outbox.empty():
            await asyncio.sleep(0.01)
        await self.connection.flush(timeout=2)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), 2)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)
        await self.connection.close()

"""One load-generator process: many simulated chargers and dashboards on one event loop.

`server_load` starts several of these so that the load generator is not the bottleneck. Each
process owns a contiguous range of stations; charger N taps card `<prefix><N>` and, once the
server answers `start`, sends seed-shaped `metrics` (`session_id`, v, a, w, wh, ts) at a fixed
rate. Dashboards (`role=client`) subscribe to one station of the same process, or to
`estacionId=all` and then measure this process's stations only, so the time a reading was
sent and the time its broadcast arrived are read from the same monotonic clock.

Latency is matched first-in first-out per (station, dashboard) and measured for readings sent
after the first second (warm-up): one connection delivers in order, and the server relays every accepted reading, so the k-th broadcast a dashboard sees
for its station is the k-th reading that station sent. A reading whose broadcast never comes
is counted as an error (`broadcast_missing`).

The process is driven over stdin/stdout, one line each way per phase:

    (start)  -> {"phase": "connected", ...}   all connections open, chargers said `status` idle
    "quit"   -> {"phase": "result", ...}      (idle runs) close everything and report
    "tap"    -> {"phase": "started", ...}     every charger tapped its card and got `start`
    "go"     -> {"phase": "sent", ...}        `--duration` seconds of `metrics`, broadcasts drained
    "stop"   -> {"phase": "result", ...}      chargers sent `stop`; sent count, latencies, errors

A phase never waits forever: every wait has a timeout, and what timed out is counted in
`errors` by kind. `errors` in each line is cumulative. stdout carries only these lines; diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import re
import sys
import time
from collections import Counter, deque

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

OPEN_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 30.0
WARMUP_S = 1.0  # the first second of readings (every task's first send) is not measured
DRAIN_STALL_S = 10.0  # no expected broadcast arrived for this long: the rest are lost
CONNECT_CONCURRENCY = 32  # handshakes in flight per process; more only overflows the listen backlog

_METRICS_PREFIX = '{"type":"metrics"'  # how the server and the relay encode it (compact JSON)
_CHARGER_ID = re.compile(r'"charger_id":(\d+)')

# The seed's `metrics` frame; formatted by hand because json.dumps was a fifth of the load
# generator's CPU. Numbers: session_id, w, wh (3 decimals), ts (unix seconds, 3 decimals).
METRICS_FRAME = '{"type":"metrics","session_id":%d,"v":230.0,"a":16.0,"w":%.1f,"wh":%.3f,"ts":%.3f}'


class Tally:
    """What one process counts: readings sent, latencies in ms, errors by kind."""

    def __init__(self):
        self.sent = 0
        self.late_sends = 0
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.outstanding = 0  # broadcasts expected by dashboards and not yet received
        self.measure_from = 0.0  # latency counts for readings sent from then on (warm-up)
        self.drained = asyncio.Event()
        self.drained.set()

    def expect(self, count: int) -> None:
        if count:
            self.outstanding += count
            self.drained.clear()

    def received(self, sent_at: float) -> None:
        """A broadcast of a reading sent at `sent_at` (monotonic) arrived now."""
        if sent_at >= self.measure_from:
            self.latencies_ms.append((time.monotonic() - sent_at) * 1000.0)
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.drained.set()


class _Peer:
    """One WebSocket connection of the load: opened, greeted, read until closed."""

    kind = ""  # "charger" or "dashboard": prefixes the error kinds
    role = ""  # the seed's `role` query parameter
    greeting = ""  # the first message the server must send

    def __init__(self, url: str, station: int, tally: Tally):
        self.url = f"{url}?role={self.role}&estacionId={station}"
        self.station = station
        self.tally = tally
        self.connection = None
        self.closing = False
        self._reader: asyncio.Task | None = None

    async def open(self) -> None:
        self.connection = await connect(
            self.url,
            compression=None,
            ping_interval=None,
            open_timeout=OPEN_TIMEOUT_S,
            max_queue=None,
        )
        greeting = json.loads(await asyncio.wait_for(self.connection.recv(), REPLY_TIMEOUT_S))
        if greeting.get("type") != self.greeting:
            raise RuntimeError(f"expected {self.greeting!r}, got {greeting.get('type')!r}")
        await self.greeted()
        self._reader = asyncio.create_task(self._read())

    async def greeted(self) -> None:
        """Called once the greeting arrived, before the reader starts."""

    def skip(self, frame: str) -> bool:
        """True for a frame not worth parsing."""
        return False

    async def on_message(self, kind: str, message: dict) -> None:
        raise NotImplementedError

    def on_error(self, message: dict) -> None:
        self.tally.errors[f"{self.kind}_error:{message.get('code')}"] += 1

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                if self.skip(frame):
                    continue
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "error":
                    self.on_error(message)
                else:
                    await self.on_message(kind, message)
        except ConnectionClosed:
            pass
        if not self.closing:
            self.tally.errors[f"{self.kind}_closed"] += 1

    async def close(self) -> None:
        self.closing = True
        if self.connection is not None:
            await self.connection.close()
        if self._reader is not None:
            await self._reader


class Charger(_Peer):
    """A simulated charger: one publisher connection that taps a card and sends metrics."""

    kind, role, greeting = "charger", "publisher", "connected"

    def __init__(self, url: str, station: int, card_uid: str, tally: Tally):
        super().__init__(url, station, tally)
        self.card_uid = card_uid
        self.watchers: list[deque] = []  # one send-time queue per dashboard of this station
        self.session_id: int | None = None
        self.started = asyncio.Event()
        self.refused = asyncio.Event()  # an `error` came back (e.g. to the tap)
        self.wh = 1000.0 + station

    async def greeted(self) -> None:
        await self.connection.send(self._status())

    def _status(self) -> str:
        if self.session_id is None:
            return json.dumps(
                {"type": "status", "state": "idle", "session_id": None, "wh": self.wh}
            )
        return json.dumps(
            {"type": "status", "state": "charging", "session_id": self.session_id, "wh": self.wh}
        )

    async def on_message(self, kind: str, message: dict) -> None:
        if kind == "start":
            self.session_id = message["session_id"]
            self.started.set()
        elif kind == "sync_request":
            await self.connection.send(self._status())
        elif kind == "stop" and not self.closing:
            self.tally.errors["remote_stop"] += 1

    def on_error(self, message: dict) -> None:
        super().on_error(message)
        self.refused.set()

    async def tap(self) -> None:
        """Tap the card; return once `start` came, raise if an `error` or nothing came."""
        await self.connection.send(json.dumps({"type": "nfc_scan", "nfc_uid": self.card_uid}))
        answers = [asyncio.ensure_future(event.wait()) for event in (self.started, self.refused)]
        try:
            await asyncio.wait(
                answers, timeout=REPLY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for answer in answers:
                answer.cancel()
        if not self.started.is_set():
            raise RuntimeError(
                "the tap was refused" if self.refused.is_set() else "no answer to the tap"
            )

    async def send_metrics(self, go_at: float, end_at: float, period: float) -> None:
        """Send one reading every `period` seconds from go_at (plus a random phase) to end_at."""
        loop = asyncio.get_running_loop()
        wall_offset = time.time() - loop.time()
        due = go_at + random.Random(self.station).uniform(0, period)
        watts = 3680.0 + (self.station % 100)
        while due < end_at:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > period:
                self.tally.late_sends += 1
                due = loop.time()  # fell a whole period behind: carry on, do not burst
            self.wh += watts * period / 3600.0
            # Stamped when due, as a meter reading is: strictly increasing even when a late
            # loop sends two readings within the same millisecond.
            frame = METRICS_FRAME % (self.session_id, watts, self.wh, due + wall_offset)
            sent_at = time.monotonic()
            for watcher in self.watchers:
                watcher.append(sent_at)
            self.tally.expect(len(self.watchers))
            try:
                await self.connection.send(frame)
            except ConnectionClosed:
                self.tally.errors["send_failed"] += 1
                return
            self.tally.sent += 1
            due += period

    async def stop(self) -> None:
        self.closing = True
        message = {
            "type": "stop",
            "session_id": self.session_id,
            "wh": round(self.wh, 3),
            "ts": round(time.time(), 3),
        }
        try:
            await self.connection.send(json.dumps(message))
        except ConnectionClosed:
            self.tally.errors["send_failed"] += 1


class Dashboard(_Peer):
    """A simulated backoffice dashboard: subscribed to one station, or to `estacionId=all` as
    the real dashboard is. It measures the latency of the stations of its own process and
    ignores the others' (their send times live in another process)."""

    kind, role, greeting = "dashboard", "client", "subscribed"

    def __init__(self, url: str, chargers: list[Charger], tally: Tally, everything: bool = False):
        super().__init__(url, "all" if everything else chargers[0].station, tally)
        self.sent_times = {charger.station: deque() for charger in chargers}
        for charger in chargers:
            charger.watchers.append(self.sent_times[charger.station])
        self.awaiting_end: set[int] = set()
        self.ended = asyncio.Event()

    def skip(self, frame: str) -> bool:
        """Another process's station's `metrics` (estacionId=all), recognised without parsing
        the whole frame: at thousands per second json.loads would load the load generator."""
        if not frame.startswith(_METRICS_PREFIX):
            return False
        found = _CHARGER_ID.search(frame)
        return found is not None and int(found.group(1)) not in self.sent_times

    async def on_message(self, kind: str, message: dict) -> None:
        if kind == "metrics":
            sent_times = self.sent_times.get(message.get("charger_id"))
            if sent_times is None:
                return  # a station of another load-generator process
            if sent_times:
                self.tally.received(sent_times.popleft())
            else:
                self.tally.errors["broadcast_unexpected"] += 1
        elif kind == "session_ended":
            self.awaiting_end.discard(message.get("charger_id"))
            if not self.awaiting_end:
                self.ended.set()

    def expect_ends(self, stations: set[int]) -> None:
        """From now on, `ended` is set once every one of these stations' sessions ended."""
        self.awaiting_end = stations & set(self.sent_times)
        if not self.awaiting_end:
            self.ended.set()


async def _each(peers, action, tally: Tally, error_kind: str, concurrency: int) -> list:
    """Run `action(peer)` for every peer, `concurrency` at a time; return the peers that failed."""
    gate = asyncio.Semaphore(concurrency)
    failed = []

    async def one(peer):
        async with gate:
            try:
                await action(peer)
            except (
                OSError,
                InvalidHandshake,
                ConnectionClosed,
                TimeoutError,
                RuntimeError,
                ValueError,
            ) as exc:
                tally.errors[error_kind] += 1
                failed.append(peer)
                print(f"loadgen: {error_kind} station {peer.station}: {exc!r}", file=sys.stderr)

    await asyncio.gather(*(one(peer) for peer in peers))
    return failed


def _emit(phase: str, **fields) -> None:
    print(json.dumps({"phase": phase, **fields}), flush=True)


async def _command(reader: asyncio.StreamReader, *expected: str) -> str:
    line = (await reader.readline()).decode().strip()
    if line not in expected:
        raise SystemExit(f"loadgen: expected {' or '.join(expected)} on stdin, got {line!r}")
    return line


async def drain(tally: Tally) -> None:
    """Wait until every expected broadcast arrived; give up when none arrived for a while."""
    last_seen, quiet_since = tally.outstanding, time.monotonic()
    while not tally.drained.is_set() and time.monotonic() - quiet_since < DRAIN_STALL_S:
        try:
            await asyncio.wait_for(tally.drained.wait(), 1.0)
        except TimeoutError:
            if tally.outstanding != last_seen:
                last_seen, quiet_since = tally.outstanding, time.monotonic()
    if not tally.drained.is_set():
        tally.errors["broadcast_missing"] += tally.outstanding


def plan_dashboards(chargers: list[Charger], count: int) -> list[Charger]:
    """Spread `count` one-station dashboards evenly over the chargers (wrapping around)."""
    if not chargers:
        return []
    return [chargers[(index * len(chargers)) // count % len(chargers)] for index in range(count)]


async def run(args) -> None:
    tally = Tally()
    chargers = [
        Charger(args.url, station, f"{args.card_prefix}{station}", tally)
        for station in range(args.first_station, args.first_station + args.chargers)
    ]
    dashboards = [
        Dashboard(args.url, [charger], tally)
        for charger in plan_dashboards(chargers, args.dashboards)
    ]
    if chargers:
        dashboards += [
            Dashboard(args.url, chargers, tally, everything=True)
            for _ in range(args.all_dashboards)
        ]
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    failed = set(await _each(chargers, Charger.open, tally, "connect_failed", CONNECT_CONCURRENCY))
    failed |= set(
        await _each(dashboards, Dashboard.open, tally, "connect_failed", CONNECT_CONCURRENCY)
    )
    live = [charger for charger in chargers if charger not in failed]
    _emit(
        "connected", connections=len(chargers) + len(dashboards) - len(failed), errors=tally.errors
    )

    if await _command(stdin, "tap", "quit") == "quit":
        await _finish(tally, dashboards + chargers)
        return
    failed = await _each(live, Charger.tap, tally, "tap_unanswered", CONNECT_CONCURRENCY)
    live = [charger for charger in live if charger not in failed]
    _emit("started", sessions=len(live), errors=tally.errors)

    await _command(stdin, "go")
    # The connections live for the whole run: move them out of the collector's reach, so the
    # load generator's own full collections do not show up as the target's latency.
    gc.freeze()
    go_at = loop.time()
    tally.measure_from = time.monotonic() + min(WARMUP_S, args.duration / 4)
    period = 1.0 / args.rate
    await asyncio.gather(
        *(charger.send_metrics(go_at, go_at + args.duration, period) for charger in live)
    )
    sent_for = loop.time() - go_at
    await drain(tally)
    _emit("sent", sent=tally.sent, send_seconds=sent_for, errors=tally.errors)

    await _command(stdin, "stop")
    await asyncio.gather(*(charger.stop() for charger in live))
    for dashboard in dashboards:
        dashboard.expect_ends({charger.station for charger in live})
    try:
        await asyncio.wait_for(
            asyncio.gather(*(dashboard.ended.wait() for dashboard in dashboards)), REPLY_TIMEOUT_S
        )
    except TimeoutError:
        tally.errors["session_ended_missing"] += sum(
            len(dashboard.awaiting_end) for dashboard in dashboards
        )
    await _finish(tally, dashboards + chargers)


async def _finish(tally: Tally, peers: list) -> None:
    """Close every connection, then print the result line."""
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
    _emit(
        "result",
        sent=tally.sent,
        late_sends=tally.late_sends,
        latencies_ms=[round(value, 3) for value in tally.latencies_ms],
        errors=tally.errors,
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.loadgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws")
    parser.add_argument("--first-station", type=int, required=True)
    parser.add_argument("--chargers", type=int, required=True)
    parser.add_argument("--dashboards", type=int, default=0, help="one-station dashboards")
    parser.add_argument("--all-dashboards", type=int, default=0, help="estacionId=all dashboards")
    parser.add_argument("--rate", type=float, required=True, help="readings per second per charger")
    parser.add_argument("--duration", type=float, required=True, help="seconds of metrics")
    parser.add_argument("--card-prefix", default="BENCH-")
    args = parser.parse_args(argv)
    if args.first_station < 1 or min(args.chargers, args.dashboards, args.all_dashboards) < 0:
        parser.error(
            "--first-station must be >= 1; --chargers and the dashboard counts must be >= 0"
        )
    if not args.rate > 0 or not args.duration > 0:
        parser.error("--rate and --duration must be > 0")
    return args


def main(argv=None) -> int:
    asyncio.run(run(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

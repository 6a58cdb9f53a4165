"""Acknowledged delivery under network and server faults, end to end (issue 10).

The real firmware on the MicroPython unix port (tools/sim_charger.py: emulated RC522, PZEM-004T
and relay) talks to the real server, run as a `python -m server` subprocess on a SQLite file
(so SIGKILL is a real crash), through the TCP fault proxy (tools/faultproxy.py). A card tap
starts a session; the session lives through 3 faults of one kind; the STOP button ends it.
Then the SQLite file must hold every reading the firmware queued, once (stored == sent, with
the outbox's `dropped` at 0 so that the claim is about delivery, not about capacity), and the
session's billed kWh must equal the emulated meter's register delta.

Fault kinds, each 3 times in one session, at the moment that hurts most:
- drop: right after a reading reached the server (its confirmation cannot come back), every
  connection is reset and new ones are refused for 20 s;
- blackhole: right after a reading reached the server, nothing passes either way for 30 s,
  nothing is closed; then the path comes back (what the endpoints did meanwhile arrives);
- sigkill: the server's commits stall (the test holds SQLite's write lock, as a slow SD card
  or fsync would) while a reading reaches the server; once the charger has had its chance to
  take it as delivered (its outbox emptied, or it queued a newer reading), the server is
  SIGKILLed and started again on the same file. Its WebSocket layer read the reading, its
  database never got it: a charger that took a pong for "delivered" (the firmware before
  issue 10) has forgotten it, so each kill loses at least one reading (at 0ce2f44: 7 of 12
  stored); one that waits for an `ack` (sent only after the commit) still holds it and
  replays it.

Durations and every timer that meets them scale together by CHAOS_SCALE (default 0.2, what
`make test` runs; `make chaos` runs 1.0, the literal 20 s / 30 s): the faults, the firmware's
ping_interval_s, ping_timeout_s, backoff, connect and ack timeouts, and the server's
PING_INTERVAL and PING_TIMEOUT (their defaults times the scale). The three kinds run
concurrently (one server, proxy and charger each) in a module fixture; one test per kind
reads its outcome.
Power x meter time scale = 1.8 kW x 10 = 18 kW apparent: under the 22 kW plausibility limit.
The firmware runs as the board gets it (compiled .mpy, as `make bench-firmware` runs it) under
`-X heapsize=96K` (see HEAPSIZE): a MemoryError anywhere in the faults fails, and the
firmware's own live heap must stay within its 64 KB (issue 13) after the faults and at its
largest sampled through them (mem watch: every 1 ms, after a collection, where the firmware
awaits; the peak is a reconnect's opening handshake). Measured on the 64-bit unix port, peak
over the three kinds: 66,912-66,944 B at offmerge 430ca6d (the opening code loaded whole,
under asyncio.wait_for_ms: over the limit); 64,864-65,248 B over 3 runs under 96K with its
two halves loaded in turn under one small timeout task (charger/wsclient.py). After the
faults: 64,544-64,640 B (64,832-64,864 B at 430ca6d).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.config import Config
from tests.firmware.mpy import requires_micropython
from tests.live_server import tokens_for_db
from tools.bench.firmware_memory import compile_modules
from tools.faultproxy import FaultProxy, Frame
from tools.sim_charger import SimCharger

ROOT = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("CHAOS_SCALE", "0.2"))
REPEATS = 3
DROP_S = 20.0
BLACKHOLE_S = 30.0
POWER_W = 1800.0
TIME_SCALE = 10.0
CARD = "04A1B2C3D4E5F6"
# The process heap: the firmware (its own limit, 64 KB, asserted below on its live heap,
# peak and after the faults) plus the simulator's share (~26 KB) plus room for fragmentation.
# 100K for a while (issue 13): with the journal and OTA the firmware grew from ~56 to ~59 KB
# at start, and the simulator's own report.py import at start-up failed "allocating 944
# bytes" with ~10 KB free in pieces: its shims were compiled from source at run time (the
# script's directory came first on sys.path), not loaded from their .mpy. Loaded as .mpy
# (tools/sim/run_charger.py) they take ~0.6 KB less and leave no parser's holes.
HEAPSIZE = "96K"
FIRMWARE_LIMIT = 64 * 1024
KINDS = ("drop", "blackhole", "sigkill")
RUN = os.environ.get("CHAOS_KINDS", ",".join(KINDS)).split(",")  # by hand: CHAOS_KINDS=sigkill
# generous: only a failing run waits this long (the firmware's default backoff at scale 1 can
# add 30 s after each 20 s drop)
WAIT_S = 60 + 60 * SCALE

pytestmark = [requires_micropython, pytest.mark.timeout(int(240 + 600 * SCALE))]


class ServerProcess:
    """`python -m server --demo` on 127.0.0.1:0 with `db`; its stderr goes to `log`."""

    def __init__(self, db: Path, log: Path):
        self.db = db
        self.log = log
        self.proc = None
        self.port = None
        self.starts = 0

    async def start(self) -> ServerProcess:
        env = dict(
            os.environ,
            PING_INTERVAL=str(Config.ping_interval * SCALE),
            PING_TIMEOUT=str(Config.ping_timeout * SCALE),
        )
        self.starts += 1
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--db",
                str(self.db),
                "--demo",
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        line = (await asyncio.wait_for(self.proc.stdout.readline(), WAIT_S)).decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, "server did not start: %r (log %s)" % (line, self.log)
        self.port = int(match.group(1))
        self._drain = asyncio.create_task(self.proc.stdout.read())  # the banner's other lines
        return self

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), WAIT_S)
            except TimeoutError:
                await self.kill()


def query(db: Path, sql: str, params=()):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as database:
        return database.execute(sql, params).fetchall()


async def add_card(db: Path) -> None:
    [(user_id,)] = query(db, "SELECT id FROM users ORDER BY id LIMIT 1")  # the demo's user
    admin = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.admin",
        "--db",
        str(db),
        "cards",
        "add",
        CARD,
        "--user",
        str(user_id),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(admin.communicate(), WAIT_S)
    assert admin.returncode == 0, out.decode()


def is_reading_up(frame: Frame) -> bool:
    return frame.up and (frame.message() or {}).get("type") == "metrics"


class CommitStall:
    """Holds SQLite's write lock on `db` (BEGIN IMMEDIATE) from `start()` to `release()`: the
    server's flusher waits (its busy timeout is 5 s) and commits nothing meanwhile."""

    def __init__(self, db: Path):
        self.db = db
        self.connection = None

    async def start(self) -> None:
        def lock():
            connection = sqlite3.connect(
                self.db, timeout=10, isolation_level=None, check_same_thread=False
            )
            connection.execute("BEGIN IMMEDIATE")
            return connection

        self.connection = await asyncio.to_thread(lock)

    async def release(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await asyncio.to_thread(lambda: (connection.rollback(), connection.close()))


@dataclass
class Outcome:
    kind: str
    session_id: int = 0
    queued: int = 0  # readings the firmware put into its outbox for the session
    dropped: int = 0  # readings the outbox had to drop (full): must be 0
    stored: int = 0  # readings of the session in the SQLite file
    duplicates: int = 0  # stored rows repeating a (charger ts, wh)
    missing_ts: list = field(default_factory=list)  # ts the proxy saw going up, never stored
    replayed: int = 0  # readings the proxy saw going up more than once (replays)
    meter_wh: int = 0  # the emulated meter's register delta over the session
    billed_wh: float = 0.0  # the session's kwh x 1000
    end_reason: str | None = None
    alerts: list = field(default_factory=list)  # alert kinds raised for the station
    flagged: int = 0  # stored readings flagged as not billed as claimed
    connections: int = 0  # connections the proxy accepted (1 + reconnect attempts)
    server_starts: int = 0
    heap_start: int = 0  # the firmware's live heap once started, and after the faults
    heap_end: int = 0  # (bytes on the 64-bit unix port, after a collection)
    heap_peak: int = 0  # its largest live heap sampled through the faults (mem watch)
    memory_errors: int = 0  # MemoryError lines in the charger's log

    def line(self) -> str:
        return (
            "%s x%d: stored %d of %d readings (dropped %d, duplicates %d, missing ts %s, "
            "%d sent again); billed %.0f Wh, meter delta %d Wh; end %s; alerts %s, %d flagged; "
            "%d connections, %d server starts; firmware heap %d B at start, %d B after, "
            "%d B peak, %d MemoryError"
            % (
                self.kind,
                REPEATS,
                self.stored,
                self.queued,
                self.dropped,
                self.duplicates,
                self.missing_ts,
                self.replayed,
                self.billed_wh,
                self.meter_wh,
                self.end_reason,
                self.alerts,
                self.flagged,
                self.connections,
                self.server_starts,
                self.heap_start,
                self.heap_end,
                self.heap_peak,
                self.memory_errors,
            )
        )


async def _wait_ended(db: Path, session_id: int):
    async with asyncio.timeout(WAIT_S):
        while True:
            rows = query(
                db, "SELECT ended_at, kwh, end_reason FROM sessions WHERE id = ?", (session_id,)
            )
            if rows and rows[0][0] is not None:
                return rows[0]
            await asyncio.sleep(0.1)  # polling interval, not a synchronization


async def run_scenario(kind: str, tmp: Path, module_dirs) -> Outcome:
    """One session through REPEATS faults of `kind`; returns what was sent, stored and billed."""
    outcome = Outcome(kind)
    db = tmp / "evse.sqlite3"
    server = await ServerProcess(db, tmp / "server.log").start()
    proxy = sim = None
    try:
        await add_card(db)
        proxy = await FaultProxy(server.port).start()
        sim = SimCharger(
            tmp,
            proxy.url + "/ws",
            token=tokens_for_db(db, "publisher", 1),
            power=POWER_W,
            time_scale=TIME_SCALE,
            ping_interval_s=max(1.0, 20 * SCALE),
            ping_timeout_s=10 * SCALE,
            backoff_min_s=1 * SCALE,
            backoff_max_s=max(1.0, 30 * SCALE),
            connect_timeout_s=10 * SCALE,
            ack_timeout_s=30 * SCALE,
            heapsize=HEAPSIZE,
            module_dirs=module_dirs,
        )
        await sim.start()
        await sim.command("mem watch")  # the firmware's live heap sampled every 1 ms: its peak
        await sim.wait_status(lambda s: s["link"], timeout=WAIT_S)
        wh_before = (await sim.status())["wh"]
        await sim.command("tap " + CARD)
        st = await sim.wait_status(lambda s: s["state"] == "charging", timeout=WAIT_S)
        outcome.session_id = st["session_id"]
        await sim.command("remove")
        await sim.wait_status(lambda s: s["readings_queued"] >= 3, timeout=WAIT_S)
        for _ in range(REPEATS):
            mark = len(proxy.frames)
            if kind == "sigkill":
                # from a clean slate: all delivered (a charger waiting for the ack of a batch
                # sends nothing more, so a batch caught by the stall would hold up the next)
                await sim.wait_status(lambda s: s["outbox"] == 0, timeout=WAIT_S)
                mark = len(proxy.frames)
                stall = CommitStall(db)
                await stall.start()
                try:
                    await proxy.wait_frame(is_reading_up, mark, WAIT_S)
                    # the charger's chance to take it as delivered: it forgot it (its outbox
                    # emptied), or it queued a newer reading meanwhile
                    queued = (await sim.status())["readings_queued"]
                    await sim.wait_status(
                        lambda s, queued=queued: s["outbox"] == 0 or s["readings_queued"] > queued,
                        timeout=WAIT_S,
                    )
                    await server.kill()
                finally:
                    await stall.release()
                await server.start()
                proxy.retarget(server.port)
            else:
                await proxy.wait_frame(is_reading_up, mark, WAIT_S)
                if kind == "drop":
                    await proxy.drop(DROP_S * SCALE)
                else:
                    await proxy.blackhole(BLACKHOLE_S * SCALE)
            # recovered: connected, everything confirmed, and charging goes on
            queued = (await sim.status())["readings_queued"]
            await sim.wait_status(
                lambda s, queued=queued: (
                    s["link"] and s["outbox"] == 0 and s["readings_queued"] >= queued + 2
                ),
                timeout=WAIT_S,
            )
        await sim.command("press stop")
        await sim.wait_status(lambda s: s["state"] == "idle" and not s["relay"], timeout=WAIT_S)
        final = await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0, timeout=WAIT_S)
        _, kwh, outcome.end_reason = await _wait_ended(db, outcome.session_id)
        outcome.billed_wh = kwh * 1000
        outcome.meter_wh = final["wh"] - wh_before
        outcome.queued = final["readings_queued"]
        outcome.dropped = final["dropped"]
        rows = query(  # the meter's readings: not the stop's final register (its last row,
            db,  # received when the session ended, 0 W)
            "SELECT COALESCE(r.charger_ts, r.ts), r.wh FROM readings r"
            " JOIN sessions s ON s.id = r.session_id WHERE r.session_id = ?"
            " AND NOT (r.received_at = s.ended_at AND r.w = 0 AND r.a = 0)",
            (outcome.session_id,),
        )
        outcome.stored = len(rows)
        outcome.duplicates = len(rows) - len(set(rows))
        stored_ts = {int(ts) for ts, _ in rows}
        sent = [
            int(f.message()["ts"])
            for f in proxy.frames
            if is_reading_up(f) and f.message().get("session_id") == outcome.session_id
        ]
        outcome.missing_ts = sorted(set(sent) - stored_ts)
        outcome.replayed = len(sent) - len(set(sent))
        outcome.alerts = [alert for (alert,) in query(db, "SELECT kind FROM alerts ORDER BY id")]
        [(outcome.flagged,)] = query(
            db,
            "SELECT COUNT(*) FROM readings WHERE session_id = ? AND flag IS NOT NULL",
            (outcome.session_id,),
        )
        outcome.connections = proxy.connections
        outcome.server_starts = server.starts
        memory = json.loads(await sim.command("mem gc"))
        outcome.heap_start, outcome.heap_end = memory["start_heap"], memory["firmware_heap"]
        outcome.heap_peak = memory["live_peak"]
        outcome.memory_errors = sum("MemoryError" in line for line in sim.lines)
        return outcome
    except Exception as problem:  # noqa: BLE001 - with the charger's log, for the report
        log = "\n".join(sim.lines[-40:]) if sim is not None else ""
        raise AssertionError(
            "%s scenario failed: %r\n--- charger log\n%s\n--- server log %s"
            % (kind, problem, log, tmp / "server.log")
        ) from problem
    finally:
        if sim is not None:
            await sim.stop()
        if proxy is not None:
            await proxy.close()
        await server.stop()


async def _run_all(base: Path) -> dict:
    module_dirs = await asyncio.to_thread(compile_modules, base)
    runs = []
    for kind in RUN:
        (base / kind).mkdir()
        runs.append(run_scenario(kind, base / kind, module_dirs))
    outcomes = await asyncio.gather(*runs, return_exceptions=True)
    return dict(zip(RUN, outcomes))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """The three scenarios, concurrently (one server, proxy and charger each)."""
    results = asyncio.run(_run_all(tmp_path_factory.mktemp("chaos")))
    for result in results.values():  # the figures, for the report (pytest -s shows them)
        print(result.line() if isinstance(result, Outcome) else repr(result))
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_every_reading_is_stored_once_and_the_meter_delta_is_billed_after_3_faults(outcomes, kind):
    if kind not in outcomes:
        pytest.skip("not in CHAOS_KINDS")
    outcome = outcomes[kind]
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome.memory_errors == 0, outcome.line()
    assert 0 < outcome.heap_end <= FIRMWARE_LIMIT, outcome.line()
    # its largest live heap through the faults too (a reconnect's handshake: module docstring)
    assert 0 < outcome.heap_peak <= FIRMWARE_LIMIT, outcome.line()
    assert outcome.dropped == 0, outcome.line()  # else "stored == sent" proves nothing
    assert outcome.queued > 3 * REPEATS, outcome.line()
    assert outcome.end_reason == "local_stop", outcome.line()
    assert (outcome.stored, outcome.duplicates, outcome.missing_ts) == (outcome.queued, 0, []), (
        outcome.line()
    )
    assert outcome.meter_wh > 0 and round(outcome.billed_wh) == outcome.meter_wh, outcome.line()
    # an honest 18 kW meter through faults and replays is no anomaly (and STOP is no fault)
    assert (outcome.alerts, outcome.flagged) == ([], 0), outcome.line()

"""`make bench-server`: the server under load, next to a bare websockets relay on the same load.

    python -m tools.bench.server_load [--chargers N] [--dashboards M] [--all-dashboards K]
                                      [--rate R] [--duration S] [--workers W] [--idle]
                                      [--no-baseline]

For each target (the real server with a temporary database, then the bare relay) it:

1. starts the target in its own process on 127.0.0.1:0 and notes its RSS;
2. starts W load-generator processes (`tools.bench.loadgen`) that open N charger connections
   (`role=publisher`, `status` idle), M one-station dashboards and K `estacionId=all`
   dashboards (`role=client`), notes the RSS again: (connected - before) / connections = RSS per idle connection;
3. has every charger tap its own card and wait for `start`;
4. says `go`: each charger sends `metrics` at R per second for S seconds; meanwhile the
   target's processed count (server: rows in `readings`; relay: frames relayed) is polled
   until it has caught up with everything sent: that window and the target's CPU seconds in
   it give the sustained throughput and the CPU cost per 1,000 readings;
5. has the chargers send `stop`, waits for the dashboards' `session_ended`, stops the target
   and counts the server's rows and open sessions once more.

Latency is charger send -> dashboard receive (see `loadgen`). Human-readable progress goes to
stderr; stdout gets exactly one JSON line (see `summary.result_line`). `--idle` only opens the
connections, holds them for `--duration` seconds and measures memory (the 10,000-connection
check). Linux only: it raises RLIMIT_NOFILE and reads /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.procstat import cpu_seconds
from tools.bench.summary import RunFigures, result_line
from tools.bench.targets import CARD_PREFIX, REPO_ROOT, RelayTarget, ServerTarget, TargetError

MAX_CHARGERS = 20_000
POLL_INTERVAL_S = 0.1
STALL_TIMEOUT_S = 10.0  # processed count not moving for this long: the rest is lost
FDS_SPARE = 200  # the target's own files: database, WAL, log, listening socket, ...


class BenchError(RuntimeError):
    """The benchmark could not run to the end; the message says which step failed."""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- load-generator processes ------------------------------------------------------------
class Workers:
    """The load-generator processes of one run and the phase lines they print."""

    def __init__(self):
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, url: str, args, stations: list[range]) -> None:
        dashboards = split(args.dashboards, args.workers)
        all_dashboards = split(args.all_dashboards, args.workers)
        for share, dashboard_count, all_count in zip(stations, dashboards, all_dashboards):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tools.bench.loadgen",
                "--url",
                url,
                "--first-station",
                str(share.start),
                "--chargers",
                str(len(share)),
                "--dashboards",
                str(dashboard_count),
                "--all-dashboards",
                str(all_count),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.duration),
                "--card-prefix",
                CARD_PREFIX,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 28,  # the result line carries every latency sample
            )
            self.processes.append(process)

    async def tell(self, command: str) -> None:
        for process in self.processes:
            process.stdin.write(f"{command}\n".encode())
            await process.stdin.drain()

    async def expect(self, phase: str, timeout: float) -> list[dict]:
        async def one(process):
            line = await process.stdout.readline()
            if not line:
                raise BenchError(
                    f"a load generator exited (code {await process.wait()}) before '{phase}'"
                )
            report = json.loads(line)
            if report.get("phase") != phase:
                raise BenchError(
                    f"a load generator said {report.get('phase')!r}, expected {phase!r}"
                )
            return report

        try:
            return await asyncio.wait_for(
                asyncio.gather(*(one(p) for p in self.processes)), timeout
            )
        except TimeoutError:
            raise BenchError(
                f"load generators did not reach '{phase}' within {timeout:.0f} s"
            ) from None

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal non-negative integers."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def station_shares(chargers: int, workers: int) -> list[range]:
    shares, first = [], 1
    for size in split(chargers, workers):
        shares.append(range(first, first + size))
        first += size
    return shares


# --- one run against one target ----------------------------------------------------------
class Progress:
    """Polls a target's processed count in the background from `go` on, and remembers when it
    last grew and the target's CPU seconds at that moment: the end of the measured window."""

    def __init__(self, target):
        self.target = target
        self.count, self.changed_at, self.cpu_at_change = 0, time.monotonic(), target.cpu_seconds()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            latest = await self.target.processed()
            if latest != self.count:
                self.count, self.changed_at = latest, time.monotonic()
                self.cpu_at_change = self.target.cpu_seconds()
            await asyncio.sleep(POLL_INTERVAL_S)

    async def caught_up(self, expected: int) -> None:
        """Return once the count reached `expected` or stopped moving for STALL_TIMEOUT_S
        (counted from now at the earliest: an overloaded target may not have stored anything
        while the load was still being sent)."""
        asked_at = time.monotonic()
        try:
            while (
                self.count < expected
                and time.monotonic() - max(self.changed_at, asked_at) < STALL_TIMEOUT_S
            ):
                self.target.check_alive()
                if self._task.done():
                    self._task.result()  # a failed poll ends the run with its error
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            self._task.cancel()


async def wait_until_caught_up(target, expected: int) -> tuple[int, float]:
    """Poll the target's processed count until it reaches `expected` or stops moving.
    Return (count, monotonic time the count last grew)."""
    progress = Progress(target)
    await progress.caught_up(expected)
    return progress.count, progress.changed_at


async def measure(target, args, start_target) -> RunFigures:
    connections = args.chargers + args.dashboards + args.all_dashboards
    figures = RunFigures(target=target.name, connections=connections)
    await start_target()
    workers = Workers()
    try:
        figures.rss_idle_kib = target.rss_kib()
        await workers.start(target.url, args, station_shares(args.chargers, args.workers))
        connect_timeout = 60 + connections / 100
        await workers.expect("connected", connect_timeout)
        figures.rss_connected_kib = target.rss_kib()
        log(f"{target.name}: {connections} connections open, RSS {figures.rss_connected_kib} KiB")
        if args.idle:
            await asyncio.sleep(args.duration)  # hold them: a charger dropped meanwhile is an error
            target.check_alive()
            await workers.tell("quit")
        else:
            await run_load(target, args, workers, figures, connect_timeout)
        for report in await workers.expect("result", connect_timeout):
            figures.sent += report["sent"]
            figures.late_sends += report["late_sends"]
            figures.latencies_ms.extend(report["latencies_ms"])
            figures.errors.update(report["errors"])  # cumulative over the worker's phases
    finally:
        await workers.close()
        await target.stop()
    figures.errors.update(target.problems())
    if figures.errors and target.log_tail(1):
        log(
            f"{target.name}: errors {dict(figures.errors)}; the end of its log:\n{target.log_tail(20)}"
        )
    counts = None if args.idle else await target.final_counts()  # None: the relay stores nothing
    if counts is not None:
        figures.rows_persisted, figures.db_bytes, still_open = counts
        lost = figures.sent - figures.rows_persisted
        if lost:
            figures.errors["readings_not_persisted"] += lost
        if still_open:
            figures.errors["sessions_left_open"] += still_open
    return figures


async def run_load(target, args, workers: Workers, figures: RunFigures, timeout: float) -> None:
    await workers.tell("tap")
    await workers.expect("started", timeout)
    log(
        f"{target.name}: {args.chargers} sessions started; {args.duration:g} s of metrics at {args.rate:g}/s each"
    )
    cpu_before, go_at = target.cpu_seconds(), time.monotonic()
    loadgen_cpu_before = workers.cpu_seconds()
    await workers.tell("go")
    progress = Progress(target)
    reports = await workers.expect("sent", args.duration + timeout + 60)
    sent = sum(report["sent"] for report in reports)
    await progress.caught_up(sent)
    processed = progress.count
    figures.cpu_s = progress.cpu_at_change - cpu_before
    figures.loadgen_cpu_s = workers.cpu_seconds() - loadgen_cpu_before
    figures.window_s = progress.changed_at - go_at
    figures.processed = processed
    log(
        f"{target.name}: {processed} of {sent} readings processed in {figures.window_s:.1f} s "
        f"({figures.msgs_per_s:.0f}/s), {figures.cpu_s:.1f} CPU s (load generators {figures.loadgen_cpu_s:.1f})"
    )
    await workers.tell("stop")


async def bench(args) -> dict:
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(
            f"the machine is busy (load average {load_before:.1f}): figures will be lower than on an idle machine"
        )
    with tempfile.TemporaryDirectory(prefix="evse-bench-") as workdir:
        server = ServerTarget(Path(workdir))
        figures = await measure(server, args, lambda: server.start(args.chargers, args.rate))
        baseline = None
        if not args.no_baseline:
            relay = RelayTarget()
            baseline = await measure(relay, args, relay.start)
    params = {
        "chargers": args.chargers,
        "dashboards": args.dashboards,
        "all_dashboards": args.all_dashboards,
        "rate": args.rate,
        "duration_s": args.duration,
        "workers": args.workers,
        "idle": args.idle,
        "offered_msgs_per_s": 0 if args.idle else round(args.chargers * args.rate, 1),
        "loadavg_before": round(load_before, 2),
    }
    return result_line(params, figures, baseline)


# --- command line ------------------------------------------------------------------------
def _bounded(kind, low, high):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low}..{high}")
        return value

    return parse


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.server_load",
        description=__doc__.split("\n")[0],
        epilog="Prints progress on stderr and one JSON line on stdout.",
    )
    parser.add_argument(
        "--chargers",
        type=_bounded(int, 1, MAX_CHARGERS),
        default=1000,
        help="simulated chargers, one session each (default 1000)",
    )
    parser.add_argument(
        "--dashboards",
        type=_bounded(int, 0, MAX_CHARGERS),
        default=100,
        help="dashboard connections, spread over the stations (default 100)",
    )
    parser.add_argument(
        "--all-dashboards",
        type=_bounded(int, 0, 100),
        default=2,
        help="dashboards on estacionId=all, as the real backoffice (default 2)",
    )
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0.01, 100.0),
        default=5.0,
        help="metrics per second per charger (default 5)",
    )
    parser.add_argument(
        "--duration",
        type=_bounded(float, 1.0, 600.0),
        default=15.0,
        help="seconds of metrics per target (default 15)",
    )
    parser.add_argument(
        "--workers",
        type=_bounded(int, 1, 16),
        default=2,
        help="load-generator processes (default 2)",
    )
    parser.add_argument(
        "--idle",
        action="store_true",
        help="only open the connections, hold them --duration seconds, measure memory",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare relay run")
    args = parser.parse_args(argv)
    if args.workers > args.chargers:
        parser.error("--workers cannot exceed --chargers")
    return args


def raise_fd_limit(connections: int) -> None:
    """Lift the soft open-files limit to the hard one; children (target, loadgens) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + FDS_SPARE  # the limit is per process; the target holds them all
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"{connections} connections need about {needed} open files; the hard limit is {hard}"
        )


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        raise_fd_limit(args.chargers + args.dashboards + args.all_dashboards)
        line = asyncio.run(bench(args))
    except (BenchError, TargetError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

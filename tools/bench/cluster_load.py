"""`make bench-cluster`: the fleet under load, 1 vs 2 vs 3 server processes behind HAProxy.

    python -m tools.bench.cluster_load [--processes 1,2,3] [--chargers N] [--dashboards M]
                                       [--all-dashboards K] [--rate R] [--duration S] [--workers W]

The method of `make bench-server` (tools/bench/server_load.py: its load-generator processes,
`measure()` and `run_load()`; nothing copied): for each process count P, a fresh PostgreSQL
database provisioned with one station and card per charger, P `python -m server` processes
on it and on one nats-server, HAProxy in front (tools/cluster.py). Chargers and dashboards all
connect to the balancer, so HAProxy spreads them over the processes: most dashboards watch a
charger on another process and receive its readings through NATS (the fan-out). Measured per
run:

- readings/s persisted: rows in PostgreSQL's `readings`, polled from `go` until they caught up
  with everything sent (the same window as bench-server);
- fanned out: readings the dashboards received after the warm-up, per second of load, and the
  ones that never arrived (`broadcast_missing`, an error);
- p50 / p99 latency, charger send -> dashboard receive;
- the server processes' CPU seconds per 1,000 readings (HAProxy, NATS and PostgreSQL not
  included), errors by kind (a reading sent and not stored is one);
- `presence_rows_written`: rows of the shared status table (`station_presence`) written over
  the whole run, from PostgreSQL's statistics once the servers exited (JSON and progress only).

Prints progress on stderr, a table and then one JSON line ({"runs": [...]}) on stdout. The
figures on a 2-core machine running the load generators, PostgreSQL, NATS and HAProxy too say
how the fleet behaves, not what more machines would add: see docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys

import asyncpg

from tools import services
from tools.bench.procstat import cpu_seconds, rss_kib
from tools.bench.server_load import BenchError, _bounded, log, measure, raise_fd_limit
from tools.bench.targets import TargetError, provision, server_env
from tools.cluster import Cluster, ClusterError

MAX_PROCESSES = 8


class ClusterTarget:
    """`measure()`'s target: a fleet of `processes` servers on a fresh database, behind HAProxy."""

    def __init__(self, pg: services.Postgres, nats_url: str, processes: int):
        self.pg, self.nats_url, self.processes = pg, nats_url, processes
        self.name = f"{processes} process" + ("es" if processes > 1 else "")
        self.fleet: Cluster | None = None
        self.database_url: str | None = None
        self._db: asyncpg.Connection | None = None
        self._logs: dict[str, str] = {}  # each server's log, read before the fleet's directory goes
        self.presence_rows = 0  # station_presence rows written (inserted or updated) in the run

    async def start(self, stations: int, rate: float, connections: int) -> None:
        self.database_url = self.pg.create_database(f"bench_{self.processes}_{os.getpid()}")
        await provision(self.database_url, stations)
        self.fleet = Cluster(
            self.database_url,
            self.nats_url,
            self.processes,
            env=server_env(rate),
            demo=False,
            maxconn=connections + 100,
        )
        try:
            await self.fleet.start()
        except ClusterError as problem:
            await self.fleet.stop()
            raise TargetError(str(problem)) from None
        self._db = await asyncpg.connect(self.database_url)

    @property
    def url(self) -> str:
        return self.fleet.balancer_url

    @property
    def pid(self) -> int:  # the first server's: for messages only
        return self.fleet.members[0].process.pid

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.fleet.pids())

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.fleet.pids())

    async def processed(self) -> int:
        return await self._db.fetchval("SELECT count(*) FROM readings")

    def check_alive(self) -> None:
        dead = [member.name for member in self.fleet.members if not member.alive]
        if dead or self.fleet.haproxy.returncode is not None:
            raise TargetError(f"{', '.join(dead) or 'haproxy'} exited during the run")

    async def stop(self) -> None:
        if self.fleet is not None:
            await asyncio.gather(*(member.stop() for member in self.fleet.members))
            self._logs = {
                member.name: member.log_path.read_text(errors="replace")
                for member in self.fleet.members
                if member.log_path.exists()
            }
            await self.fleet.stop()

    async def final_counts(self) -> tuple[int, int, int]:
        rows = await self._db.fetchval("SELECT count(*) FROM readings")
        size = await self._db.fetchval("SELECT pg_database_size(current_database())")
        still_open = await self._db.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
        # the servers have exited (stop() came first): their backends' statistics are in
        self.presence_rows = await self._db.fetchval(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables"
            " WHERE relname = 'station_presence'"
        )
        await self._db.close()
        return rows, size, still_open

    def problems(self) -> dict:
        tracebacks = sum(
            text.count("Traceback (most recent call last)") for text in self._logs.values()
        )
        return {"server_traceback": tracebacks} if tracebacks else {}

    def log_tail(self, lines: int) -> str:
        return "\n".join(
            f"[{name}] {line}"
            for name, text in self._logs.items()
            for line in text.splitlines()[-lines:]
        )


def run_row(target: ClusterTarget, figures, args) -> dict:
    """One line of the table: what `measure()` found for one process count."""
    row = figures.as_dict()
    measured_s = max(args.duration - min(1.0, args.duration / 4), 1e-9)  # loadgen's warm-up
    row.update(
        {
            "processes": target.processes,
            "persisted_per_s": row.pop("msgs_per_s"),
            "fanned_out": len(figures.latencies_ms),
            "fanned_out_per_s": round(len(figures.latencies_ms) / measured_s, 1),
            "rows_persisted": figures.rows_persisted,
            # the shared status table's writes over the whole run (connects, load, closes)
            "presence_rows_written": target.presence_rows,
        }
    )
    for key in ("rss_per_conn_kib", "late_sends"):
        row.pop(key, None)
    return row


def table(rows: list[dict], args) -> str:
    offered = args.chargers * args.rate
    lines = [
        f"{args.chargers} chargers x {args.rate:g} readings/s ({offered:g}/s offered) for {args.duration:g} s, "
        f"{args.dashboards} dashboards + {args.all_dashboards} on all, all through HAProxy",
        "| processes | persisted/s | fanned out/s | p50 ms | p99 ms | server CPU s per 1k | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        errors = row["errors"]
        kinds = ", ".join(f"{kind} {count}" for kind, count in row["error_kinds"].items())
        lines.append(
            f"| {row['processes']} | {row['persisted_per_s']} | {row['fanned_out_per_s']} | "
            f"{row['p50_ms']} | {row['p99_ms']} | {row['cpu_s_per_1k_msgs']} | "
            f"{errors}{' (' + kinds + ')' if kinds else ''} |"
        )
    return "\n".join(lines)


async def bench(args) -> list[dict]:
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(
            f"the machine is busy (load average {load_before:.1f}): figures will be lower than on an idle machine"
        )
    rows = []
    connections = args.chargers + args.dashboards + args.all_dashboards
    with services.postgres() as pg, services.nats() as bus:
        for processes in args.processes:
            target = ClusterTarget(pg, bus.url, processes)
            figures = await measure(
                target, args, lambda t=target: t.start(args.chargers, args.rate, connections)
            )
            rows.append(run_row(target, figures, args))
            log(
                f"{target.name}: {rows[-1]['persisted_per_s']} readings/s persisted, "
                f"{rows[-1]['fanned_out_per_s']}/s fanned out, p99 {rows[-1]['p99_ms']} ms, "
                f"{rows[-1]['presence_rows_written']} shared status rows written, "
                f"{figures.error_count} errors"
            )
    for row in rows:
        row["loadavg_before"] = round(load_before, 2)
    return rows


def _process_counts(text: str) -> list[int]:
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of process counts, e.g. 1,2,3"
        )
    counts = [int(part) for part in text.split(",")]
    if not all(1 <= count <= MAX_PROCESSES for count in counts):
        raise argparse.ArgumentTypeError(f"each process count must be 1..{MAX_PROCESSES}")
    return counts


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.cluster_load",
        description=__doc__.split("\n")[0],
        epilog="Prints progress on stderr, a table and one JSON line on stdout.",
    )
    parser.add_argument(
        "--processes",
        type=_process_counts,
        default=[1, 2, 3],
        help="process counts to measure, in order (default 1,2,3)",
    )
    parser.add_argument(
        "--chargers",
        type=_bounded(int, 1, 10_000),
        default=600,
        help="simulated chargers, one session each (default 600)",
    )
    parser.add_argument(
        "--dashboards",
        type=_bounded(int, 0, 10_000),
        default=60,
        help="one-station dashboards (default 60)",
    )
    parser.add_argument(
        "--all-dashboards",
        type=_bounded(int, 0, 100),
        default=2,
        help="dashboards on estacionId=all (default 2)",
    )
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0.01, 100.0),
        default=2.0,
        help="metrics per second per charger (default 2)",
    )
    parser.add_argument(
        "--duration",
        type=_bounded(float, 1.0, 600.0),
        default=15.0,
        help="seconds of metrics per process count (default 15)",
    )
    parser.add_argument(
        "--workers",
        type=_bounded(int, 1, 16),
        default=2,
        help="load-generator processes (default 2)",
    )
    args = parser.parse_args(argv)
    if args.workers > args.chargers:
        parser.error("--workers cannot exceed --chargers")
    args.idle = False  # measure(): a load run, never the idle-connections one
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        raise_fd_limit(args.chargers + args.dashboards + args.all_dashboards)
        rows = asyncio.run(bench(args))
    except (BenchError, TargetError, ClusterError, services.ServiceUnavailable) as problem:
        print(f"bench: error: {problem}", file=sys.stderr)
        return 1
    print(table(rows, args), flush=True)
    print(
        json.dumps(
            {
                "bench": "cluster_load",
                "chargers": args.chargers,
                "rate": args.rate,
                "duration_s": args.duration,
                "dashboards": args.dashboards,
                "all_dashboards": args.all_dashboards,
                "runs": rows,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

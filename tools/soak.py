"""`make soak`: hold many charger connections sending metrics for a long time; report the
server's memory growth and every error. Not part of CI (it takes minutes by design).

    python -m tools.soak [--chargers 2000] [--rate 0.5] [--minutes 10] [--dashboards 20]
                         [--warmup 60] [--workers 2]

It reuses the bench's pieces (tools/bench): the server as a child process on a temporary
database (`ServerTarget`, provisioned stations and cards) and the load-generator processes
(`tools.bench.loadgen`). Steps: connect every charger and dashboard, start one session per
charger, send `metrics` at `--rate` per charger for `--minutes`, wait until every reading is
stored, stop the sessions. The server's RSS is sampled every 30 s; the verdict compares the RSS
after `--warmup` seconds of load (SQLite's page cache and the allocator's pools fill in the first
seconds) with the RSS at the end: growth must stay under 5 %. Errors (connections dropped,
replies missing, readings not stored, sessions left open, tracebacks in the server log) must be
zero. Progress goes to stderr; stdout gets one JSON line; the exit status is 0 only if both hold.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.procstat import rss_kib
from tools.bench.server_load import Workers, _bounded, log, station_shares, wait_until_caught_up
from tools.bench.targets import ServerTarget, count_rows

MAX_GROWTH_PERCENT = 5.0
SAMPLE_INTERVAL_S = 30.0


async def soak(args) -> dict:
    connections = args.chargers + args.dashboards
    load = argparse.Namespace(
        dashboards=args.dashboards,
        all_dashboards=0,
        workers=args.workers,
        rate=args.rate,
        duration=args.minutes * 60,
    )
    timeout = 60 + connections / 50
    errors: collections.Counter = collections.Counter()
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="evse-soak-") as workdir:
        server, workers = ServerTarget(Path(workdir)), Workers()
        await server.start(args.chargers, args.rate)  # above 5/s the server's rate limit is raised
        try:
            await workers.start(server.url, load, station_shares(args.chargers, args.workers))
            await workers.expect("connected", timeout)
            await workers.tell("tap")
            await workers.expect("started", timeout)
            log(
                f"soak: {args.chargers} chargers charging, {args.dashboards} dashboards; "
                f"{args.minutes:g} min of metrics at {args.rate:g}/s each"
            )
            go_at = time.monotonic()
            samples.append((0.0, rss_kib(server.pid)))
            await workers.tell("go")
            sent_reports = asyncio.ensure_future(
                workers.expect("sent", load.duration + timeout + 60)
            )
            while not sent_reports.done():
                await asyncio.wait([sent_reports], timeout=SAMPLE_INTERVAL_S)
                server.check_alive()
                samples.append((time.monotonic() - go_at, rss_kib(server.pid)))
                log(f"soak: {samples[-1][0]:.0f} s, server RSS {samples[-1][1]} KiB")
            sent = sum(report["sent"] for report in sent_reports.result())
            processed, _ = await wait_until_caught_up(server, sent)
            rss_end = rss_kib(server.pid)
            await workers.tell("stop")
            for report in await workers.expect("result", timeout):
                errors.update(report["errors"])
        finally:
            await workers.close()
            await server.stop()
        errors.update(server.problems())
        if sent - processed:
            errors["readings_not_persisted"] += sent - processed
        still_open = count_rows(server.db_path, "sessions", "ended_at IS NULL")
        if still_open:
            errors["sessions_left_open"] += still_open
    after_warmup = next((rss for at, rss in samples if at >= args.warmup), samples[-1][1])
    growth = 100.0 * (rss_end - after_warmup) / after_warmup
    return {
        "chargers": args.chargers,
        "dashboards": args.dashboards,
        "rate": args.rate,
        "minutes": args.minutes,
        "readings_sent": sent,
        "readings_stored": processed,
        "rss_start_kib": samples[0][1],
        "rss_after_warmup_kib": after_warmup,
        "rss_end_kib": rss_end,
        "rss_growth_percent": round(growth, 2),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "rss_samples_kib": [rss for _, rss in samples],
        "ok": growth < MAX_GROWTH_PERCENT and not errors,
    }


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--chargers", type=_bounded(int, 1, 20_000), default=2000)
    parser.add_argument(
        "--dashboards",
        type=_bounded(int, 0, 20_000),
        default=20,
        help="one-station dashboards (default 20)",
    )
    parser.add_argument(
        "--rate",
        type=_bounded(float, 0.01, 100.0),
        default=0.5,
        help="metrics per second per charger",
    )
    parser.add_argument("--minutes", type=_bounded(float, 0.1, 24 * 60), default=10.0)
    parser.add_argument(
        "--warmup",
        type=_bounded(float, 0.0, 3600.0),
        default=60.0,
        help="seconds of load before the reference RSS (default 60)",
    )
    parser.add_argument(
        "--workers", type=_bounded(int, 1, 16), default=2, help="load-generator processes"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    try:
        result = asyncio.run(soak(args))
    except Exception as problem:  # noqa: BLE001 - one line for the operator, not a traceback
        print(f"soak: failed: {problem}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

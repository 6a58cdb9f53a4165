"""The CSV export (server/storage/export.py) on a big history: prints figures, one JSON line.

    python -m tools.bench.export_sessions [--sessions 50000] [--backends sqlite,postgres]

For each backend it fills a fresh database with N closed sessions (three stations, one user,
one start every 10 minutes, bulk-inserted outside Storage) and times `export_sessions` over the
whole history, then over one station's third of it, each the best of --repeat runs; then
`pages_all` walks the whole history's pages both ways (OFFSET as the export paged before,
keyset as it pages now) and gives each walk's seconds and its first and last page's ms.
PostgreSQL is a throwaway server (tools/services.py). Figures only: no bound is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from server.storage import MAX_PAGE, open_storage
from server.storage.export import export_sessions
from tools import services

T0 = 1_700_000_000.0
STATE = '{"mode":"register","wh0":1000.0,"last_wh":13000.0,"ts":1700000600.0}'


def session_rows(count: int) -> list[tuple]:
    return [
        (i % 3 + 1, 1, "04A1B2C3", T0 + 600 * i, T0 + 600 * i + 3600, 12.0, 84.0, 7.0, "stop")
        for i in range(count)
    ]


_INSERT = (
    "INSERT INTO sessions (station_id, user_id, card_uid, started_at, ended_at, kwh, cost,"
    " tariff, end_reason, energy_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def fill(target: str | Path, count: int) -> None:
    storage = await open_storage(target)
    try:
        for station_id in (1, 2, 3):
            await storage.add_station(f"Estación {station_id}", 7.0, station_id=station_id)
        user = await storage.add_user("Juan Pérez")
        await storage.add_card("04A1B2C3", user.id)
    finally:
        await storage.close()
    rows = [(*row, STATE) for row in session_rows(count)]
    if isinstance(target, Path):
        conn = sqlite3.connect(target)
        with conn:
            conn.executemany(_INSERT, rows)
        conn.close()
        return
    conn = await asyncpg.connect(target)
    try:
        await conn.copy_records_to_table(
            "sessions",
            records=rows,
            columns=(
                "station_id",
                "user_id",
                "card_uid",
                "started_at",
                "ended_at",
                "kwh",
                "cost",
                "tariff",
                "end_reason",
                "energy_state",
            ),
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def timed(target: str | Path, repeat: int, **filters) -> tuple[float, int, int]:
    """(best seconds, rows, bytes) of `export_sessions(**filters)` over `repeat` runs."""
    storage = await open_storage(target)
    try:
        best, rows, size = float("inf"), 0, 0
        for _ in range(repeat):
            start = time.perf_counter()
            text, rows = await export_sessions(storage, **filters)
            best = min(best, time.perf_counter() - start)
            size = len(text.encode("utf-8"))
        return best, rows, size
    finally:
        await storage.close()


async def walks(target: str | Path, **filters) -> dict:
    """The storage side of an export, page by page, both ways on the same data: OFFSET (what
    the export did before: list_sessions, which also counts the total each page) and keyset
    (Storage.sessions_before, what it does now). Seconds in all, and ms of the first and last
    page: a walk is linear when its last page costs what its first does."""
    storage = await open_storage(target)
    figures = {}
    try:
        for name in ("offset", "keyset"):
            pages, done, before = [], 0, None
            while True:
                start = time.perf_counter()
                if name == "offset":
                    page, _ = await storage.list_sessions(**filters, limit=MAX_PAGE, offset=done)
                else:
                    page = await storage.sessions_before(**filters, before=before, limit=MAX_PAGE)
                pages.append(time.perf_counter() - start)
                done += len(page)
                if len(page) < MAX_PAGE:
                    break
                before = (page[-1].started_at, page[-1].id)
            figures[name] = {
                "s": round(sum(pages), 3),
                "first_page_ms": round(pages[0] * 1000, 1),
                "last_full_page_ms": round(pages[-2 if len(pages) > 1 else -1] * 1000, 1),
                "rows": done,
            }
    finally:
        await storage.close()
    return figures


async def measure(backend: str, target: str | Path, count: int, repeat: int) -> dict:
    await fill(target, count)
    whole, rows, size = await timed(target, repeat)
    station, station_rows, _ = await timed(target, repeat, station_id=2)
    return {
        "backend": backend,
        "sessions": count,
        "export_all_s": round(whole, 3),
        "export_all_rows": rows,
        "export_all_bytes": size,
        "export_station_s": round(station, 3),
        "export_station_rows": station_rows,
        "rows_per_s": round(rows / whole),
        "pages_all": await walks(target),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.export_sessions")
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if not backends or set(backends) - {"sqlite", "postgres"}:
        parser.error("--backends: a comma-separated list of sqlite and postgres")
    if not 1 <= args.sessions <= 10_000_000 or not 1 <= args.repeat <= 100:
        parser.error("--sessions from 1 to 10,000,000, --repeat from 1 to 100")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            path = Path(tmp) / "bench.sqlite3"
            results.append(asyncio.run(measure("sqlite", path, args.sessions, args.repeat)))
            print(json.dumps(results[-1]), file=sys.stderr)
        if "postgres" in backends:
            with services.postgres() as pg:
                url = pg.create_database("bench")
                results.append(asyncio.run(measure("postgres", url, args.sessions, args.repeat)))
                print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"export_sessions": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the offline card list costs the database: `offline_candidates` with and without the
index sessions_by_card (migration 0007), on a SQLite file.

    python -m tools.bench.offline_lists [--cards 200] [--used 100] [--sessions 200000]
                                        [--repeat 5]

Builds a throwaway database through the real storage (all migrations), adds `--cards` enabled
cards and `--sessions` closed sessions spread over the first `--used` of them (the others were
never used, as new cards: without the index each costs a scan of every session), then times `offline_candidates()`
(the query behind every keyed charger's connect, every REFRESH_S pass and every card change)
with the index, drops it and times it again. Prints progress on stderr and one JSON line:
{"cards", "used", "sessions", "with_index_s", "without_index_s"} (best of `--repeat`). A figure, not a
test: nothing is asserted.
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

from server.storage import open_storage

T0 = 1_767_225_600.0


async def best_of(storage, repeat: int) -> tuple[float, int]:
    best, found = float("inf"), 0
    for _ in range(repeat):
        began = time.perf_counter()
        found = len(await storage.offline_candidates())
        best = min(best, time.perf_counter() - began)
    return best, found


async def run(cards: int, used: int, sessions: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.sqlite3"
        storage = await open_storage(path)
        station = await storage.add_station("Estación 1", 7.0, station_id=1)
        user = await storage.add_user("Flota")
        uids = ["04%08X" % n for n in range(cards)]
        for uid in uids:
            await storage.add_card(uid, user.id)
        await storage.close()
        with sqlite3.connect(path) as db:
            db.executemany(
                "INSERT INTO sessions (station_id, user_id, card_uid, started_at, ended_at,"
                " tariff, end_reason) VALUES (?, ?, ?, ?, ?, 7.0, 'local_stop')",
                (
                    (station.id, user.id, uids[n % used], T0 + 60 * n, T0 + 60 * n + 30)
                    for n in range(sessions)
                ),
            )
        print(f"{cards} cards ({used} used), {sessions} sessions stored", file=sys.stderr)
        storage = await open_storage(path)
        try:
            with_index, found = await best_of(storage, repeat)
        finally:
            await storage.close()
        with sqlite3.connect(path) as db:
            db.execute("DROP INDEX sessions_by_card")
        storage = await open_storage(path)
        try:
            without_index, _ = await best_of(storage, repeat)
        finally:
            await storage.close()
        assert found == cards, found
        return {
            "cards": cards,
            "used": used,
            "sessions": sessions,
            "with_index_s": round(with_index, 4),
            "without_index_s": round(without_index, 4),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--used", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.cards < 1 or not 1 <= args.used <= args.cards or args.sessions < 0 or args.repeat < 1:
        parser.error(
            "--cards and --repeat must be at least 1, --used between 1 and --cards,"
            " --sessions at least 0"
        )
    print(json.dumps(asyncio.run(run(args.cards, args.used, args.sessions, args.repeat))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

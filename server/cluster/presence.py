"""Shared live status of every station in a fleet: one PostgreSQL row per station.

The process that serves a station's charger (its owner) keeps the row: who owns it, the
ownership epoch, whether its charger is online, the station's live description (the `charger`
object of `init`: status and open session) and a heartbeat. Any process answers `init` and
`/api/stations` from these rows, so a dashboard on any process sees every charger.

Heartbeat and expiry: the owner touches its rows every HEARTBEAT_S (5 s); a row whose
heartbeat is older than EXPIRY_S (15 s: three missed heartbeats, and the fleet's own
"desconectado within 15 s" liveness rule) belongs to a process that died or lost the database,
and its station is shown `desconectado` (its open session stays shown, as when a charger drops
off a single server). Ages are computed with the database's clock (`now()`), so the processes'
clocks never have to agree.

A claim carries the epoch the storage granted (server/storage `claim_station`) and only ever
moves the row's epoch up: of two processes claiming at once, the one the storage served last
owns the row, whatever order their claims reach it in. A write carries the writer's (owner,
epoch): once another process claimed the station (a newer epoch) the old owner's writes change
nothing, and the caller learns it (the stations it no longer owns).
"""

from __future__ import annotations

import json
import logging

import asyncpg

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
EXPIRY_S = 15.0
_LOCK_KEY = 0x65767365_70726573 & 0x7FFFFFFFFFFFFFFF  # "evse" "pres": the table's creation lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS station_presence (
    station_id   bigint PRIMARY KEY,
    owner        text NOT NULL,
    epoch        bigint NOT NULL,
    online       boolean NOT NULL DEFAULT false,
    view         jsonb,
    heartbeat_at timestamptz NOT NULL DEFAULT now()
)
"""


class Presence:
    """The station_presence table through a small asyncpg pool."""

    def __init__(self, pool, expiry_s: float = EXPIRY_S):
        self.pool = pool
        self.expiry_s = expiry_s

    @classmethod
    async def open(cls, dsn: str, expiry_s: float = EXPIRY_S) -> Presence:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                await connection.execute(_SCHEMA)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, expiry_s)

    async def close(self) -> None:
        await self.pool.close()

    async def claim(self, station_id: int, owner: str, epoch: int) -> bool:
        """Make `owner` the station's owner at `epoch`, the epoch the storage granted its claim
        (`claim_station`). False when the row already carries this epoch or a newer one: another
        process claimed the station after this one in the storage (it won the race) and its
        row stays as it is."""
        claimed = await self.pool.fetchval(
            """
            INSERT INTO station_presence (station_id, owner, epoch, online, heartbeat_at)
            VALUES ($1, $2, $3, true, now())
            ON CONFLICT (station_id) DO UPDATE
               SET owner = EXCLUDED.owner, epoch = EXCLUDED.epoch,
                   online = true, heartbeat_at = now()
             WHERE station_presence.epoch < EXCLUDED.epoch
            RETURNING true
            """,
            station_id,
            owner,
            epoch,
        )
        return claimed is not None

    async def write_many(self, owner: str, rows: list[tuple[int, int, bool, dict]]) -> set[int]:
        """Several stations' new descriptions in one statement: rows of (station_id, epoch,
        online, view); returns the stations `owner` no longer owns (nothing written for them)."""
        if not rows:
            return set()
        written = await self.pool.fetch(
            """
            UPDATE station_presence p SET online = w.online, view = w.view, heartbeat_at = now()
              FROM unnest($2::bigint[], $3::bigint[], $4::boolean[], $5::jsonb[])
                   AS w(station_id, epoch, online, view)
             WHERE p.station_id = w.station_id AND p.owner = $1 AND p.epoch = w.epoch
            RETURNING p.station_id
            """,
            owner,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [json.dumps(r[3]) for r in rows],
        )
        return {r[0] for r in rows} - {row["station_id"] for row in written}

    async def heartbeat(self, owner: str, held: dict[int, int]) -> set[int]:
        """Touch the rows `owner` still holds (station -> epoch); return the stations it lost."""
        if not held:
            return set()
        rows = await self.pool.fetch(
            """
            UPDATE station_presence p SET heartbeat_at = now()
              FROM unnest($2::bigint[], $3::bigint[]) AS h(station_id, epoch)
             WHERE p.station_id = h.station_id AND p.owner = $1 AND p.epoch = h.epoch
            RETURNING p.station_id
            """,
            owner,
            list(held),
            list(held.values()),
        )
        return set(held) - {row["station_id"] for row in rows}

    async def views(self, station_id: int | None = None) -> dict[int, dict]:
        """Every station's shared row (or one station's): {"owner","epoch","online","view","fresh"}."""
        rows = await self.pool.fetch(
            """
            SELECT station_id, owner, epoch, online, view::text AS view,
                   extract(epoch FROM now() - heartbeat_at) < $1 AS fresh
              FROM station_presence
             WHERE $2::bigint IS NULL OR station_id = $2
            """,
            self.expiry_s,
            station_id,
        )
        return {
            row["station_id"]: {
                "owner": row["owner"],
                "epoch": row["epoch"],
                "online": row["online"],
                "view": json.loads(row["view"]) if row["view"] else None,
                "fresh": row["fresh"],
            }
            for row in rows
        }

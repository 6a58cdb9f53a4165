"""PostgreSQL backend of the storage contract (server/storage/contract.py), with asyncpg.

Selected by `DATABASE_URL=postgresql://...` (server/config.py); several server processes may
share one database. A pool of connections; every write is one transaction on one of them.

Durability. Session start/end, alerts, the emergency latch and reference data commit with the
server's default `synchronous_commit` (on: the WAL is flushed before COMMIT returns). Reading
batches (readings + the sessions' running totals) run `SET LOCAL synchronous_commit = off`:
the commit returns before the WAL reaches the disk, so a crash of the PostgreSQL server (not of
ours) may lose the last fraction of a second of readings, never corrupt anything; the next
durable commit flushes them too. A SIGKILL of a server process loses nothing committed. This is
the same trade SQLite's backend makes with synchronous=NORMAL for its batches.

Readings go in with `copy_records_to_table` (COPY, binary); readings naming a session that
does not exist are left out of the COPY (looked up first) and the drop is logged.

Station ownership: `claim_station` moves `stations.owner_epoch` up by one (the newest claimer
wins); a write carrying an epoch locks the station row `FOR SHARE` and is refused with
StaleOwner when the epoch moved on, so a claim and a fenced write never cross.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from server.energy import DEFAULT_MAX_POWER_W
from server.uids import normalize_uid

from ..arguments import (
    acknowledge_args,
    alert_args,
    auth_list_args,
    card_args,
    claim_args,
    epoch_arg,
    latch_args,
    session_end_args,
    session_start_args,
)
from ..batcher import Batched, Batcher, check_batching
from ..common import CommonQueries, numbered, session_filters
from ..errors import Duplicate, NotFound, StaleOwner, StorageError
from ..pending import Batch
from ..records import Card, Station, User
from ..rows import READING_COLUMNS, totals_from_row
from ..values import check_name, check_number
from .migrate import migrate, postgres_migrations

log = logging.getLogger("server.storage")

POOL_MAX_SIZE = 10
CONNECT_TIMEOUT_S = 10.0

# a progress row carrying an epoch is written only while its station still has that epoch
_UPDATE_PROGRESS = (
    "UPDATE sessions SET kwh = $1, cost = $2, energy_state = $3 WHERE id = $4"
    " AND ended_at IS NULL AND ($5::bigint IS NULL"
    " OR $5 = (SELECT owner_epoch FROM stations WHERE id = sessions.station_id))"
)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}@{host}" if at else host).geturl()


async def _write_batch(conn: asyncpg.Connection, batch: Batch) -> None:
    """Inside a transaction: COPY the readings, update the progress rows. A reading naming a
    session that does not exist (the only foreign-key failure possible: values are checked
    when queued, sessions are never deleted) is left out and the drop logged, rather than
    retrying a poisoned batch forever: the batch's session ids are looked up first (one
    indexed query), so the COPY cannot fail on them."""
    if batch.readings:
        wanted = sorted({row[0] for row in batch.readings})
        existing = {
            row[0]
            for row in await conn.fetch(
                "SELECT id FROM sessions WHERE id = any($1::bigint[])", wanted
            )
        }
        rows = batch.readings
        if len(existing) < len(wanted):
            rows = [row for row in rows if row[0] in existing]
            log.error(
                "storage: dropped %d of %d readings that name no existing session",
                len(batch.readings) - len(rows),
                len(batch.readings),
            )
        if rows:
            await conn.copy_records_to_table("readings", records=rows, columns=READING_COLUMNS)
    if batch.progress:
        await conn.executemany(
            _UPDATE_PROGRESS,
            [
                (kwh, cost, state, sid, epoch)
                for sid, (kwh, cost, state, epoch) in batch.progress.items()
            ],
        )


async def _check_epoch(conn: asyncpg.Connection, station_id: int, epoch: int | None) -> None:
    """Raise StaleOwner if the caller's epoch is not the station's (None: no check). Locks the
    station row FOR SHARE until the transaction ends: a claim waits for this write."""
    if epoch is None:
        return
    row = await conn.fetchrow(
        "SELECT owner_epoch, owner FROM stations WHERE id = $1 FOR SHARE", station_id
    )
    if row is None:
        raise NotFound(f"station {station_id} does not exist")
    if row[0] != epoch:
        raise StaleOwner(
            f"station {station_id} is owned by {row[1]!r} at epoch {row[0]}; "
            f"this write carried epoch {epoch}"
        )


class PostgresStorage(CommonQueries, Batched):
    """See the module docstring and docs/architecture.md ("Storage contract"); the read-only
    queries are CommonQueries' (server/storage/common.py)."""

    backend = "postgres"
    placeholder = "$N"

    def __init__(
        self, pool: asyncpg.Pool, url: str, flush_interval: float, max_queued_readings: int
    ) -> None:
        self._pool = pool
        self.url = url
        self._batcher = Batcher(self._commit_batch, flush_interval, max_queued_readings)
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, url: str, flush_interval: float | None = None, max_queued_readings: int | None = None
    ) -> PostgresStorage:
        """Connect (a pool), migrate under the advisory lock and start the flusher. A server
        that cannot be reached raises StorageError saying why (the caller names the database)."""
        flush_interval, max_queued_readings = check_batching(flush_interval, max_queued_readings)
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=POOL_MAX_SIZE, timeout=CONNECT_TIMEOUT_S
            )
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            ValueError,
            TimeoutError,
        ) as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            async with pool.acquire() as conn:
                await migrate(conn, postgres_migrations())
        except BaseException:
            await pool.close()
            raise
        storage = cls(pool, url, flush_interval, max_queued_readings)
        storage._batcher.start()
        return storage

    async def close(self) -> None:
        """Stop the flusher, write what is queued, close the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._batcher.close()
        finally:
            await self._pool.close()

    async def _commit_batch(self, batch: Batch) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await _write_batch(conn, batch)

    async def _fetch(self, sql: str, *params) -> list:
        async with self._pool.acquire() as conn:
            return await conn.fetch(sql, *params)

    async def _rows(self, sql, params) -> list:
        return await self._fetch(sql, *params)

    async def _rows_together(self, queries) -> list[list]:
        """One read-only REPEATABLE READ transaction: one snapshot for every query."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await conn.fetch(sql, *params) for sql, params in queries]

    async def _update_station(self, column: str, value, station_id: int) -> None:
        async with self._pool.acquire() as conn:
            sql = f"UPDATE stations SET {column} = $1 WHERE id = $2 RETURNING id"
            if await conn.fetchval(sql, value, station_id) is None:
                raise NotFound(f"station {station_id} does not exist")

    # -- station ownership -------------------------------------------------------------------

    async def claim_station(self, station_id: int, owner: str) -> int:
        """Make `owner` the station's owner; returns the station's new epoch. NotFound."""
        owner, station_id = claim_args(station_id, owner)
        async with self._pool.acquire() as conn:
            epoch = await conn.fetchval(
                "UPDATE stations SET owner = $1, owner_epoch = owner_epoch + 1 WHERE id = $2"
                " RETURNING owner_epoch",
                owner,
                station_id,
            )
        if epoch is None:
            raise NotFound(f"station {station_id} does not exist")
        return epoch

    # -- sessions ----------------------------------------------------------------------------

    async def create_session(
        self,
        station_id: int,
        user_id: int,
        card_uid: str,
        started_at: float,
        tariff: float,
        energy_state: dict,
        epoch: int | None = None,
        offline_local_id: int | None = None,
    ) -> int:
        """Insert an open session and commit at once; return its id. StaleOwner if `epoch`
        is given and the station's epoch moved on. `offline_local_id`: the charger's id of a
        session it started offline (unique per station: Duplicate)."""
        params = session_start_args(
            station_id, user_id, card_uid, started_at, tariff, energy_state, offline_local_id
        )
        epoch = epoch_arg(epoch)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await _check_epoch(conn, station_id, epoch)
                return await conn.fetchval(
                    "INSERT INTO sessions (station_id, user_id, card_uid, started_at, tariff,"
                    " energy_state, offline_local_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " RETURNING id",
                    *params,
                )
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(
                f"station {station_id} already has offline start {offline_local_id}"
            ) from exc

    async def end_session(
        self,
        session_id: int,
        ended_at: float,
        kwh: float,
        cost: float,
        reason: str,
        energy_state: dict,
        epoch: int | None = None,
    ) -> bool:
        """Write the queued readings, then close the session, in one (durable) transaction.
        Returns False (and changes nothing of the session) if it was already ended;
        raises NotFound for an unknown session, StaleOwner (nothing written) if `epoch` is
        given and the station's epoch moved on."""
        params = session_end_args(session_id, ended_at, kwh, cost, reason, energy_state)
        epoch = epoch_arg(epoch)

        async def end(batch):
            async with self._pool.acquire() as conn, conn.transaction():
                await _write_batch(conn, batch)
                station_id = await conn.fetchval(
                    "SELECT station_id FROM sessions WHERE id = $1", session_id
                )
                if station_id is None:
                    return None
                await _check_epoch(conn, station_id, epoch)
                return (
                    await conn.fetchval(
                        "UPDATE sessions SET ended_at = $1, kwh = $2, cost = $3, end_reason = $4,"
                        " energy_state = $5 WHERE id = $6 AND ended_at IS NULL RETURNING id",
                        *params,
                    )
                    is not None
                )

        async with self._batcher.lock, self._batcher.taken() as batch:
            ended = await self._batcher.write_through(batch, end(batch))
        if ended is None:
            raise NotFound(f"session {session_id} does not exist")
        return ended

    async def session_totals(
        self,
        now: float,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict:
        """Over every session the filters match: {"sessions", "kwh", "cost", "duration"}, the
        duration in whole seconds per session (an open one up to `now`), summed in SQL."""
        now = check_number(now, "now")
        condition, params = session_filters(station_id, user_id, since, until)
        [row] = await self._fetch(
            numbered(
                "SELECT count(*), coalesce(sum(s.kwh), 0), coalesce(sum(s.cost), 0),"
                " coalesce(sum(greatest(0, trunc(coalesce(s.ended_at, ?) - s.started_at))), 0)"
                f" FROM sessions s WHERE {condition}"
            ),
            now,
            *params,
        )
        return totals_from_row(row)

    # -- alerts ------------------------------------------------------------------------------

    async def add_alert(
        self,
        station_id: int,
        session_id: int | None,
        kind: str,
        created_at: float,
        detail: str = "",
    ) -> int:
        """Store an alert (e.g. kind "emergency") and commit at once; return its id."""
        params = alert_args(station_id, session_id, kind, created_at, detail)
        async with self._pool.acquire() as conn:
            return await conn.fetchval(
                "INSERT INTO alerts (station_id, session_id, kind, created_at, detail)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                *params,
            )

    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool:
        """Mark an alert acknowledged; False if it already was; NotFound if unknown."""
        params = acknowledge_args(alert_id, acknowledged_at)
        async with self._pool.acquire() as conn:
            if await conn.fetchval(
                "UPDATE alerts SET acknowledged_at = $1 WHERE id = $2"
                " AND acknowledged_at IS NULL RETURNING id",
                *params,
            ):
                return True
            if await conn.fetchval("SELECT 1 FROM alerts WHERE id = $1", alert_id):
                return False
        raise NotFound(f"alert {alert_id} does not exist")

    # -- the emergency latch and recent sessions (what the session core reloads at start) ----

    async def set_emergency_latch(
        self, station_id: int, latched_at: float | None, epoch: int | None = None
    ) -> None:
        """Persist a station's emergency latch: when it was set, or None when the charger
        reported its local reset. Commits at once (durable). Raises NotFound, StaleOwner."""
        params = latch_args(station_id, latched_at)
        epoch = epoch_arg(epoch)
        async with self._pool.acquire() as conn, conn.transaction():
            await _check_epoch(conn, station_id, epoch)
            done = await conn.fetchval(
                "UPDATE stations SET emergency_latched_at = $1 WHERE id = $2 RETURNING id", *params
            )
        if done is None:
            raise NotFound(f"station {station_id} does not exist")

    # -- reference data ----------------------------------------------------------------------

    async def add_station(
        self,
        name: str,
        tariff: float,
        station_id: int | None = None,
        max_power_w: float = DEFAULT_MAX_POWER_W,
        charge_point_id: str | None = None,
    ) -> Station:
        """A seed station, or with `charge_point_id` an OCPP 1.6J one. Raises Duplicate if
        station_id or the charge point id is taken, ValueError for a max power outside
        0 < W <= 50,000 or a malformed charge point id."""
        params = await self._new_station_args(
            name, tariff, station_id, max_power_w, charge_point_id
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if station_id is None:
                    new_id = await conn.fetchval(
                        "INSERT INTO stations (name, tariff, max_power_w, protocol,"
                        " charge_point_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        *params[1:],
                    )
                else:
                    new_id = await conn.fetchval(
                        "INSERT INTO stations (id, name, tariff, max_power_w, protocol,"
                        " charge_point_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        *params,
                    )
                    # an id given by hand: the next automatic one must come after it (SQLite's
                    # INTEGER PRIMARY KEY does this by itself)
                    await conn.execute(
                        "SELECT setval(pg_get_serial_sequence('stations', 'id'),"
                        " (SELECT max(id) FROM stations))"
                    )
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(f"station {station_id} already exists") from exc
        return Station(new_id, *params[1:])

    async def add_user(self, name: str) -> User:
        name = check_name(name, "user name")
        async with self._pool.acquire() as conn:
            new_id = await conn.fetchval("INSERT INTO users (name) VALUES ($1) RETURNING id", name)
        return User(new_id, name)

    async def add_card(self, uid: str, user_id: int) -> Card:
        """Normalizes uid; raises Duplicate (UID taken) or NotFound (unknown user)."""
        uid, user_id = card_args(uid, user_id)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                user_name = await conn.fetchval(
                    "SELECT name FROM users WHERE id = $1 FOR SHARE", user_id
                )
                if user_name is None:
                    raise NotFound(f"user {user_id} does not exist")
                await conn.execute(
                    "INSERT INTO cards (uid, user_id, enabled) VALUES ($1, $2, 1)", uid, user_id
                )
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(f"card {uid} already exists") from exc
        return Card(uid, user_id, user_name, True)

    async def set_card_enabled(self, uid: str, enabled: bool) -> None:
        """Raises NotFound for an unknown card."""
        uid = normalize_uid(uid)
        async with self._pool.acquire() as conn:
            if (
                await conn.fetchval(
                    "UPDATE cards SET enabled = $1 WHERE uid = $2 RETURNING uid",
                    1 if enabled else 0,
                    uid,
                )
                is None
            ):
                raise NotFound(f"card {uid} does not exist")

    # -- offline authorization (issue 13; server/offline_auth.py) ---------------------------

    async def save_auth_list(
        self, station_id: int, offline: bool, cards: str, created_at: float
    ) -> int:
        """Store a new list for the station under the next version; return that version.
        Raises NotFound for an unknown station. The station's row is locked meanwhile, so two
        processes never take the same version."""
        station_id, created_at = auth_list_args(station_id, created_at)
        async with self._pool.acquire() as conn, conn.transaction():
            if (
                await conn.fetchval("SELECT id FROM stations WHERE id = $1 FOR UPDATE", station_id)
                is None
            ):
                raise NotFound(f"station {station_id} does not exist")
            return await conn.fetchval(
                "INSERT INTO auth_lists (station_id, version, offline, cards, created_at)"
                " SELECT $1, coalesce(max(version), 0) + 1, $2::integer, $3::text,"
                " $4::double precision FROM auth_lists WHERE station_id = $1 RETURNING version",
                station_id,
                1 if offline else 0,
                cards,
                created_at,
            )

    # -- maintenance -------------------------------------------------------------------------

    async def backup(self, out: str | Path) -> Path:
        """A consistent dump of the live database (queued readings flushed first) to `out`,
        with `pg_dump --format=custom` (restore with pg_restore), written next to it and
        renamed, so `out` is never half-written. StorageError without pg_dump."""
        out = Path(out)
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise StorageError(
                "pg_dump is not installed (apt-get install postgresql-client); "
                "a PostgreSQL database is backed up with pg_dump"
            )
        await self.flush()
        partial = out.with_name(out.name + ".partial")
        partial.unlink(missing_ok=True)
        process = await asyncio.create_subprocess_exec(
            pg_dump,
            "--format=custom",
            "--file",
            str(partial),
            "--dbname",
            self.url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await process.communicate()
        if process.returncode != 0:
            partial.unlink(missing_ok=True)
            raise StorageError(
                f"pg_dump of {safe_url(self.url)} failed: {errors.decode(errors='replace').strip()}"
            )
        try:
            partial.replace(out)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write the backup {out}: {exc}") from exc
        return out

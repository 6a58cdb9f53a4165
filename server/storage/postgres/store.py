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

from ..batcher import Batched, Batcher, check_batching
from ..contract import MAX_PAGE
from ..errors import Duplicate, NotFound, StaleOwner, StorageError
from ..pending import Batch
from ..records import Alert, Card, Reading, SessionRecord, Station, User
from ..values import (
    check_charge_point_id,
    check_count,
    check_id,
    check_max_power,
    check_name,
    check_number,
    check_tariff,
    decode_state,
    encode_state,
)
from .migrate import migrate, postgres_migrations

log = logging.getLogger("server.storage")

POOL_MAX_SIZE = 10
CONNECT_TIMEOUT_S = 10.0

_SESSION_COLUMNS = """
    s.id, s.station_id, s.user_id, u.name, s.card_uid, s.started_at, s.ended_at,
    s.kwh, s.cost, s.tariff, s.end_reason, s.energy_state
    FROM sessions s JOIN users u ON u.id = s.user_id
"""
_CARD_COLUMNS = "c.uid, c.user_id, u.name, c.enabled FROM cards c JOIN users u ON u.id = c.user_id"
_ALERT_COLUMNS = "id, station_id, session_id, kind, created_at, detail, acknowledged_at FROM alerts"
_READING_COLUMNS = (
    "session_id",
    "ts",
    "v",
    "a",
    "w",
    "wh",
    "kwh",
    "charger_ts",
    "received_at",
    "flag",
)
_STATION_COLUMNS = "id, name, tariff, max_power_w, protocol, charge_point_id FROM stations"
# a progress row carrying an epoch is written only while its station still has that epoch
_UPDATE_PROGRESS = (
    "UPDATE sessions SET kwh = $1, cost = $2, energy_state = $3 WHERE id = $4"
    " AND ended_at IS NULL AND ($5::bigint IS NULL"
    " OR $5 = (SELECT owner_epoch FROM stations WHERE id = sessions.station_id))"
)


def _session(row) -> SessionRecord:
    *head, state_json = row
    return SessionRecord(*head, energy_state=decode_state(state_json, row[0]))


def _card(row) -> Card:
    uid, user_id, user_name, enabled = row
    return Card(uid, user_id, user_name, bool(enabled))


def _where(conditions, params: list | None = None) -> tuple[str, list]:
    """AND of the (sql with `{}` for its parameter, name, value, check) conditions whose value
    is not None; numbered $1, $2... after the `params` already bound."""
    where, params = ["TRUE"], list(params or [])
    for sql, name, value, check in conditions:
        if value is not None:
            if check is not None:
                params.append(check(value, name))
                sql = sql.format(f"${len(params)}")
            where.append(sql)
    return " AND ".join(where), params


def _session_filters(station_id, user_id, since, until, params=None) -> tuple[str, list]:
    return _where(
        [
            ("s.station_id = {}", "station_id", station_id, check_id),
            ("s.user_id = {}", "user_id", user_id, check_id),
            ("s.started_at >= {}", "since", since, check_number),
            ("s.started_at < {}", "until", until, check_number),
        ],
        params,
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
            await conn.copy_records_to_table("readings", records=rows, columns=_READING_COLUMNS)
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


class PostgresStorage(Batched):
    """See the module docstring and docs/architecture.md ("Storage contract")."""

    backend = "postgres"

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

    # -- station ownership -------------------------------------------------------------------

    async def claim_station(self, station_id: int, owner: str) -> int:
        """Make `owner` the station's owner; returns the station's new epoch. NotFound."""
        owner, station_id = check_name(owner, "owner"), check_id(station_id, "station id")
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

    async def station_owner(self, station_id: int) -> tuple[str | None, int]:
        """(owner, epoch) of the station: (None, 0) if never claimed. NotFound."""
        rows = await self._fetch(
            "SELECT owner, owner_epoch FROM stations WHERE id = $1",
            check_id(station_id, "station id"),
        )
        if not rows:
            raise NotFound(f"station {station_id} does not exist")
        return rows[0][0], rows[0][1]

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
        params = (
            check_id(station_id, "station_id"),
            check_id(user_id, "user_id"),
            normalize_uid(card_uid),
            check_number(started_at, "started_at"),
            check_tariff(tariff),
            encode_state(energy_state),
            None if offline_local_id is None else check_id(offline_local_id, "local id"),
        )
        if epoch is not None:
            check_count(epoch, "epoch")
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
        params = (
            check_number(ended_at, "ended_at"),
            check_number(kwh, "kwh"),
            check_number(cost, "cost"),
            check_name(reason, "reason"),
            encode_state(energy_state),
            check_id(session_id, "session_id"),
        )
        if epoch is not None:
            check_count(epoch, "epoch")

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

    async def open_sessions(self) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLUMNS} WHERE s.ended_at IS NULL ORDER BY s.id"
        )
        return [_session(row) for row in rows]

    async def get_session(self, session_id: int) -> SessionRecord | None:
        rows = await self._fetch(f"SELECT {_SESSION_COLUMNS} WHERE s.id = $1", session_id)
        return _session(rows[0]) if rows else None

    async def list_sessions(
        self,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[SessionRecord], int]:
        """Sessions newest first, filtered by station, user and start time (since <= started_at
        < until); returns one page and the total number matching."""
        limit, offset = check_count(limit, "limit", MAX_PAGE), check_count(offset, "offset")
        condition, params = _session_filters(station_id, user_id, since, until)
        n = len(params)
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(
                f"SELECT {_SESSION_COLUMNS} WHERE {condition}"
                f" ORDER BY s.started_at DESC, s.id DESC LIMIT ${n + 1} OFFSET ${n + 2}",
                *params,
                limit,
                offset,
            )
            total = await conn.fetchval(
                f"SELECT count(*) FROM sessions s WHERE {condition}", *params
            )
        return [_session(row) for row in rows], total

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
        condition, params = _session_filters(
            station_id, user_id, since, until, [check_number(now, "now")]
        )
        [row] = await self._fetch(
            "SELECT count(*), coalesce(sum(s.kwh), 0), coalesce(sum(s.cost), 0),"
            " coalesce(sum(greatest(0, trunc(coalesce(s.ended_at, $1) - s.started_at))), 0)"
            f" FROM sessions s WHERE {condition}",
            *params,
        )
        count, kwh, cost, duration = row
        return {
            "sessions": count,
            "kwh": float(kwh),
            "cost": float(cost),
            "duration": int(duration),
        }

    async def readings(self, session_id: int) -> list[Reading]:
        """The committed readings of a session, oldest first (call flush() first to include
        the queued ones)."""
        rows = await self._fetch(
            "SELECT session_id, ts, v, a, w, wh, kwh, charger_ts, received_at, flag"
            " FROM readings WHERE session_id = $1 ORDER BY ts, id",
            session_id,
        )
        return [Reading(*row) for row in rows]

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
        if session_id is not None:
            check_id(session_id, "session_id")
        if not isinstance(detail, str):
            raise ValueError("detail must be text")
        params = (
            check_id(station_id, "station_id"),
            session_id,
            check_name(kind, "kind"),
            check_number(created_at, "created_at"),
            detail,
        )
        async with self._pool.acquire() as conn:
            return await conn.fetchval(
                "INSERT INTO alerts (station_id, session_id, kind, created_at, detail)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                *params,
            )

    async def list_alerts(
        self, station_id: int | None = None, unacknowledged_only: bool = False, limit: int = 100
    ) -> list[Alert]:
        """Alerts newest first."""
        condition, params = _where(
            [
                ("station_id = {}", "station_id", station_id, check_id),
                ("acknowledged_at IS NULL", "", unacknowledged_only or None, None),
            ]
        )
        params.append(min(check_count(limit, "limit"), MAX_PAGE))
        rows = await self._fetch(
            f"SELECT {_ALERT_COLUMNS} WHERE {condition}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(params)}",
            *params,
        )
        return [Alert(*row) for row in rows]

    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool:
        """Mark an alert acknowledged; False if it already was; NotFound if unknown."""
        params = (check_number(acknowledged_at, "acknowledged_at"), check_id(alert_id, "alert_id"))
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
        params = (
            None if latched_at is None else check_number(latched_at, "latched_at"),
            check_id(station_id, "station id"),
        )
        if epoch is not None:
            check_count(epoch, "epoch")
        async with self._pool.acquire() as conn, conn.transaction():
            await _check_epoch(conn, station_id, epoch)
            done = await conn.fetchval(
                "UPDATE stations SET emergency_latched_at = $1 WHERE id = $2 RETURNING id", *params
            )
        if done is None:
            raise NotFound(f"station {station_id} does not exist")

    async def emergency_latches(self) -> dict[int, float]:
        """station id -> when its latch was set, for every latched station."""
        rows = await self._fetch(
            "SELECT id, emergency_latched_at FROM stations"
            " WHERE emergency_latched_at IS NOT NULL ORDER BY id"
        )
        return {row[0]: row[1] for row in rows}

    async def recent_closed_sessions(self, per_station: int) -> dict[int, list[int]]:
        """station id -> the ids of its last `per_station` closed sessions, oldest first."""
        rows = await self._fetch(
            "SELECT station_id, id FROM (SELECT station_id, id, ROW_NUMBER() OVER"
            " (PARTITION BY station_id ORDER BY id DESC) AS newest FROM sessions"
            " WHERE ended_at IS NOT NULL) AS ranked WHERE newest <= $1 ORDER BY station_id, id",
            check_count(per_station, "per_station"),
        )
        recent: dict[int, list[int]] = {}
        for station_id, session_id in rows:
            recent.setdefault(station_id, []).append(session_id)
        return recent

    # -- reference data ----------------------------------------------------------------------

    async def get_station(self, station_id: int) -> Station | None:
        rows = await self._fetch(f"SELECT {_STATION_COLUMNS} WHERE id = $1", station_id)
        return Station(*rows[0]) if rows else None

    async def list_stations(self) -> list[Station]:
        rows = await self._fetch(f"SELECT {_STATION_COLUMNS} ORDER BY id")
        return [Station(*row) for row in rows]

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
        name, tariff = check_name(name, "station name"), check_tariff(tariff)
        max_power_w = check_max_power(max_power_w)
        if station_id is not None:
            check_id(station_id, "station id")
        protocol = "seed"
        if charge_point_id is not None:
            charge_point_id, protocol = check_charge_point_id(charge_point_id), "ocpp16"
            if await self.station_by_charge_point(charge_point_id) is not None:
                raise Duplicate(f"charge point id {charge_point_id!r} already belongs to a station")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if station_id is None:
                    new_id = await conn.fetchval(
                        "INSERT INTO stations (name, tariff, max_power_w, protocol,"
                        " charge_point_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        name,
                        tariff,
                        max_power_w,
                        protocol,
                        charge_point_id,
                    )
                else:
                    new_id = await conn.fetchval(
                        "INSERT INTO stations (id, name, tariff, max_power_w, protocol,"
                        " charge_point_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        station_id,
                        name,
                        tariff,
                        max_power_w,
                        protocol,
                        charge_point_id,
                    )
                    # an id given by hand: the next automatic one must come after it (SQLite's
                    # INTEGER PRIMARY KEY does this by itself)
                    await conn.execute(
                        "SELECT setval(pg_get_serial_sequence('stations', 'id'),"
                        " (SELECT max(id) FROM stations))"
                    )
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(f"station {station_id} already exists") from exc
        return Station(new_id, name, tariff, max_power_w, protocol, charge_point_id)

    async def station_by_charge_point(self, charge_point_id: str) -> Station | None:
        """The OCPP station with this charge point id, or None."""
        rows = await self._fetch(
            f"SELECT {_STATION_COLUMNS} WHERE charge_point_id = $1", charge_point_id
        )
        return Station(*rows[0]) if rows else None

    async def _update_station(self, sql: str, *params) -> None:
        """`sql` updates the station $2 (RETURNING id); NotFound if there is none."""
        async with self._pool.acquire() as conn:
            if await conn.fetchval(sql, *params) is None:
                raise NotFound(f"station {params[1]} does not exist")

    async def set_max_power(self, station_id: int, max_power_w: float) -> None:
        """The station's plausibility limit in W (0 < W <= 50,000, else ValueError); raises
        NotFound for an unknown station. Applies from the next reading on."""
        await self._update_station(
            "UPDATE stations SET max_power_w = $1 WHERE id = $2 RETURNING id",
            check_max_power(max_power_w),
            check_id(station_id, "station id"),
        )

    async def station_key_hash(self, station_id: int) -> str | None:
        """The SHA-256 of the station's charger key (server/auth.py), None if none was issued."""
        rows = await self._fetch("SELECT key_hash FROM stations WHERE id = $1", station_id)
        return rows[0][0] if rows else None

    async def set_station_key_hash(self, station_id: int, key_hash: str) -> None:
        """Replace the station's key hash (issuing or rotating its key). Raises NotFound."""
        await self._update_station(
            "UPDATE stations SET key_hash = $1 WHERE id = $2 RETURNING id",
            key_hash,
            check_id(station_id, "station id"),
        )

    async def set_tariff(self, station_id: int, tariff: float) -> None:
        """Raises NotFound for an unknown station. Open sessions keep the tariff they began with."""
        await self._update_station(
            "UPDATE stations SET tariff = $1 WHERE id = $2 RETURNING id",
            check_tariff(tariff),
            check_id(station_id, "station id"),
        )

    async def add_user(self, name: str) -> User:
        name = check_name(name, "user name")
        async with self._pool.acquire() as conn:
            new_id = await conn.fetchval("INSERT INTO users (name) VALUES ($1) RETURNING id", name)
        return User(new_id, name)

    async def list_users(self) -> list[User]:
        rows = await self._fetch("SELECT id, name FROM users ORDER BY id")
        return [User(*row) for row in rows]

    async def find_card(self, uid: str) -> Card | None:
        """uid must already be normalized (server.uids.normalize_uid)."""
        rows = await self._fetch(f"SELECT {_CARD_COLUMNS} WHERE c.uid = $1", uid)
        return _card(rows[0]) if rows else None

    async def add_card(self, uid: str, user_id: int) -> Card:
        """Normalizes uid; raises Duplicate (UID taken) or NotFound (unknown user)."""
        uid, user_id = normalize_uid(uid), check_id(user_id, "user id")
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

    async def list_cards(self) -> list[Card]:
        rows = await self._fetch(f"SELECT {_CARD_COLUMNS} ORDER BY u.name, c.uid")
        return [_card(row) for row in rows]

    async def is_empty(self) -> bool:
        """True when there are no stations, users or cards (a fresh database)."""
        rows = await self._fetch(
            "SELECT (SELECT count(*) FROM stations) + (SELECT count(*) FROM users)"
            " + (SELECT count(*) FROM cards)"
        )
        return rows[0][0] == 0

    # -- offline authorization (issue 13; server/offline_auth.py) ---------------------------

    async def offline_auth(self, station_id: int) -> bool | None:
        """Whether the station's charger may start a listed card offline; None: no station."""
        rows = await self._fetch("SELECT offline_auth FROM stations WHERE id = $1", station_id)
        return bool(rows[0][0]) if rows else None

    async def set_offline_auth(self, station_id: int, allowed: bool) -> None:
        """Turn offline starts on or off for a station. Raises NotFound."""
        await self._update_station(
            "UPDATE stations SET offline_auth = $1 WHERE id = $2 RETURNING id",
            1 if allowed else 0,
            check_id(station_id, "station id"),
        )

    async def offline_candidates(self) -> list[tuple[str, float | None]]:
        """Every enabled card with the start of its latest session (None: never used)."""
        rows = await self._fetch(
            "SELECT c.uid, (SELECT max(s.started_at) FROM sessions s WHERE s.card_uid = c.uid)"
            " FROM cards c WHERE c.enabled = 1"
        )
        return [(row[0], row[1]) for row in rows]

    async def latest_auth_list(self, station_id: int) -> tuple[int, bool, str, float] | None:
        """The newest list signed for the station: (version, offline, cards, created_at)."""
        rows = await self._fetch(
            "SELECT version, offline, cards, created_at FROM auth_lists WHERE station_id = $1"
            " ORDER BY version DESC LIMIT 1",
            station_id,
        )
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def auth_list(self, station_id: int, version: int) -> tuple[int, bool, str, float] | None:
        """The list of that version signed for the station, or None."""
        rows = await self._fetch(
            "SELECT version, offline, cards, created_at FROM auth_lists"
            " WHERE station_id = $1 AND version = $2",
            station_id,
            version,
        )
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def save_auth_list(
        self, station_id: int, offline: bool, cards: str, created_at: float
    ) -> int:
        """Store a new list for the station under the next version; return that version.
        Raises NotFound for an unknown station. The station's row is locked meanwhile, so two
        processes never take the same version."""
        station_id = check_id(station_id, "station id")
        created_at = check_number(created_at, "created_at")
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

    async def offline_session(self, station_id: int, local_id: int) -> int | None:
        """The session created for the charger's offline start `local_id`, or None."""
        rows = await self._fetch(
            "SELECT id FROM sessions WHERE station_id = $1 AND offline_local_id = $2",
            station_id,
            local_id,
        )
        return rows[0][0] if rows else None

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

    # -- one station as stored (a fleet process taking the station over) --------------------

    async def station_as_stored(
        self, station_id: int, recent: int
    ) -> tuple[SessionRecord | None, list[int], bool]:
        """The station's open session (or None), the ids of its last `recent` closed sessions
        (oldest first) and whether its emergency latch is set, from one snapshot. NotFound."""
        station_id, recent = check_id(station_id, "station id"), check_count(recent, "recent")
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            latched = await conn.fetchval(
                "SELECT emergency_latched_at IS NOT NULL FROM stations WHERE id = $1", station_id
            )
            if latched is None:
                raise NotFound(f"station {station_id} does not exist")
            open_row = await conn.fetchrow(
                f"SELECT {_SESSION_COLUMNS} WHERE s.station_id = $1 AND s.ended_at IS NULL"
                " ORDER BY s.id LIMIT 1",
                station_id,
            )
            closed = await conn.fetch(
                "SELECT id FROM sessions WHERE station_id = $1 AND ended_at IS NOT NULL"
                " ORDER BY id DESC LIMIT $2",
                station_id,
                recent,
            )
        return (
            (_session(open_row) if open_row else None),
            [row[0] for row in reversed(closed)],
            latched,
        )

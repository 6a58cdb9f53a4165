"""SQLite backend of the storage contract (server/storage/contract.py): one file, one process.

Transactions. One plain sqlite3 connection on its own thread (sqlite/thread.py), opened in
autocommit mode; every write is one function run on that thread, one explicit
`BEGIN IMMEDIATE ... COMMIT` (ROLLBACK on error), so statements of two coroutines never
interleave and a read never sees half a transaction. Batches of readings and progress come from
the backend-neutral batcher (server/storage/batcher.py) and are written in one round trip.

Durability. WAL journal, foreign keys on. A committed transaction survives a SIGKILL of the
process in any synchronous mode (the WAL is written before COMMIT returns). For power loss we
mix modes per transaction: session start/end, alerts and reference data are written with
`synchronous=FULL` (the WAL is fsynced at COMMIT: a started or ended session is never lost),
reading batches with `synchronous=NORMAL` (no fsync 4 times a second on a Raspberry Pi's SD
card; a power cut may lose the last seconds of readings and progress, never corrupt the file,
and the next FULL commit syncs them too).

Station ownership: one process serves a SQLite file, so every claim succeeds; the epochs are
kept anyway (stations.owner_epoch) so the contract and its tests are the same as PostgreSQL's.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

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
from ..common import CommonQueries, session_filters
from ..errors import Duplicate, NotFound, StaleOwner, StorageError
from ..pending import Batch
from ..records import Card, Station, User
from ..rows import READING_COLUMNS, totals_from_row
from ..values import check_name, check_number
from .migrate import migrate, sqlite_migrations
from .thread import SqliteThread

log = logging.getLogger("server.storage")

BUSY_TIMEOUT_MS = 5000

_INSERT_READING = (
    f"INSERT INTO readings ({', '.join(READING_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(READING_COLUMNS))})"
)
# a progress row carrying an epoch is written only while its station still has that epoch
_UPDATE_PROGRESS = (
    "UPDATE sessions SET kwh = ?, cost = ?, energy_state = ? WHERE id = ? AND ended_at IS NULL"
    " AND (?5 IS NULL OR ?5 = (SELECT owner_epoch FROM stations WHERE id = sessions.station_id))"
)


# -- functions run on the connection's thread ---------------------------------------------------


def _transaction(conn: sqlite3.Connection, work, args, durable: bool):
    """`work(conn, *args)` inside BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any error.
    durable=True fsyncs at COMMIT (synchronous=FULL); see the module docstring."""
    if durable:
        conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        return result
    finally:
        if durable:
            conn.execute("PRAGMA synchronous = NORMAL")


def _write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    """Inside a transaction: insert the readings, update progress. A reading naming no
    existing session (the only IntegrityError possible: values are checked when queued) is
    dropped and the good rows kept, rather than retrying a poisoned batch forever; the rows
    executemany inserted before the error are rolled back first."""
    conn.execute("SAVEPOINT batch")
    if batch.readings:
        try:
            conn.executemany(_INSERT_READING, batch.readings)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO batch")
            dropped = 0
            for row in batch.readings:
                try:
                    conn.execute(_INSERT_READING, row)
                except sqlite3.IntegrityError:
                    dropped += 1
            log.error(
                "storage: dropped %d of %d readings that name no existing session",
                dropped,
                len(batch.readings),
            )
    if batch.progress:
        conn.executemany(
            _UPDATE_PROGRESS,
            [
                (kwh, cost, state, sid, epoch)
                for sid, (kwh, cost, state, epoch) in batch.progress.items()
            ],
        )
    conn.execute("RELEASE batch")


def _check_epoch(conn: sqlite3.Connection, station_id: int, epoch: int | None) -> None:
    """Raise StaleOwner if the caller's epoch is not the station's (None: no check)."""
    if epoch is None:
        return
    row = conn.execute(
        "SELECT owner_epoch, owner FROM stations WHERE id = ?", (station_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"station {station_id} does not exist")
    if row[0] != epoch:
        raise StaleOwner(
            f"station {station_id} is owned by {row[1]!r} at epoch {row[0]}; "
            f"this write carried epoch {epoch}"
        )


class SqliteStorage(CommonQueries, Batched):
    """See the module docstring and docs/architecture.md ("Storage contract"); the read-only
    queries are CommonQueries' (server/storage/common.py)."""

    backend = "sqlite"
    placeholder = "?"

    def __init__(
        self, db: SqliteThread, path: Path, flush_interval: float, max_queued_readings: int
    ) -> None:
        self._db = db
        self.path = path
        self._batcher = Batcher(self._commit_batch, flush_interval, max_queued_readings)
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        flush_interval: float | None = None,
        max_queued_readings: int | None = None,
    ) -> SqliteStorage:
        """Open (creating if needed) the database, migrate it and start the flusher.
        Defaults: the batcher's FLUSH_INTERVAL_S and MAX_QUEUED_READINGS."""
        flush_interval, max_queued_readings = check_batching(flush_interval, max_queued_readings)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await SqliteThread.connect(path)
        try:
            mode = await db.run(_prepare, path)
            if mode.lower() != "wal":
                log.warning("storage: %s cannot use WAL (journal_mode=%s)", path, mode)
            await db.run(migrate, sqlite_migrations())
        except BaseException:
            await db.close()
            raise
        storage = cls(db, path, flush_interval, max_queued_readings)
        storage._batcher.start()
        return storage

    async def close(self) -> None:
        """Stop the flusher, write what is queued, close the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._batcher.close()
        finally:
            await self._db.close()

    async def _commit_batch(self, batch: Batch) -> None:
        await self._write(_write_batch, batch, durable=False)

    async def _write(self, work, *args, durable: bool = True):
        """`work(conn, *args)` in one transaction on the connection's thread."""
        return await self._db.run(_transaction, work, args, durable)

    async def _fetch(self, sql: str, params=()) -> list:
        return await self._db.fetchall(sql, params)

    async def _rows(self, sql, params) -> list:
        return await self._fetch(sql, params)

    async def _rows_together(self, queries) -> list[list]:
        """One call on the connection's thread: no write runs between the queries."""
        return await self._db.run(
            lambda conn: [conn.execute(sql, params).fetchall() for sql, params in queries]
        )

    async def _update_station(self, column: str, value, station_id: int) -> None:
        def update(conn):
            sql = f"UPDATE stations SET {column} = ? WHERE id = ?"
            if not conn.execute(sql, (value, station_id)).rowcount:
                raise NotFound(f"station {station_id} does not exist")

        await self._write(update)

    # -- station ownership -------------------------------------------------------------------

    async def claim_station(self, station_id: int, owner: str) -> int:
        """Make `owner` the station's owner; returns the station's new epoch. NotFound."""
        params = claim_args(station_id, owner)

        def claim(conn):
            row = conn.execute(
                "UPDATE stations SET owner = ?, owner_epoch = owner_epoch + 1"
                " WHERE id = ? RETURNING owner_epoch",
                params,
            ).fetchone()
            if row is None:
                raise NotFound(f"station {station_id} does not exist")
            return row[0]

        return await self._write(claim)

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

        def create(conn):
            _check_epoch(conn, station_id, epoch)
            try:
                return conn.execute(
                    "INSERT INTO sessions (station_id, user_id, card_uid, started_at, tariff,"
                    " energy_state, offline_local_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    params,
                ).lastrowid
            except sqlite3.IntegrityError as exc:
                if offline_local_id is not None and "offline_local_id" in str(exc):
                    raise Duplicate(
                        f"station {station_id} already has offline start {offline_local_id}"
                    ) from exc
                raise

        return await self._write(create)

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
        """Write the queued readings, then close the session, in one transaction.
        Returns False (and changes nothing of the session) if it was already ended;
        raises NotFound for an unknown session, StaleOwner (nothing written) if `epoch` is
        given and the station's epoch moved on."""
        params = session_end_args(session_id, ended_at, kwh, cost, reason, energy_state)
        epoch = epoch_arg(epoch)

        def end(conn, batch):
            _write_batch(conn, batch)
            row = conn.execute(
                "SELECT station_id FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            _check_epoch(conn, row[0], epoch)
            return (
                conn.execute(
                    "UPDATE sessions SET ended_at = ?, kwh = ?, cost = ?, end_reason = ?,"
                    " energy_state = ? WHERE id = ? AND ended_at IS NULL",
                    params,
                ).rowcount
                > 0
            )

        async with self._batcher.lock, self._batcher.taken() as batch:
            ended = await self._batcher.write_through(batch, self._write(end, batch))
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
        rows = await self._fetch(
            "SELECT count(*), coalesce(sum(s.kwh), 0), coalesce(sum(s.cost), 0),"
            " coalesce(sum(max(0, CAST(coalesce(s.ended_at, ?) - s.started_at AS INTEGER))), 0)"
            f" FROM sessions s WHERE {condition}",
            (now, *params),
        )
        return totals_from_row(rows[0])

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
        return await self._write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO alerts (station_id, session_id, kind, created_at, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    params,
                ).lastrowid
            )
        )

    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool:
        """Mark an alert acknowledged; False if it already was; NotFound if unknown."""
        params = acknowledge_args(alert_id, acknowledged_at)

        def acknowledge(conn):
            if conn.execute(
                "UPDATE alerts SET acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
                params,
            ).rowcount:
                return True
            if conn.execute("SELECT 1 FROM alerts WHERE id = ?", (alert_id,)).fetchone():
                return False
            return None

        done = await self._write(acknowledge)
        if done is None:
            raise NotFound(f"alert {alert_id} does not exist")
        return done

    # -- the emergency latch and recent sessions (what the session core reloads at start) ----

    async def set_emergency_latch(
        self, station_id: int, latched_at: float | None, epoch: int | None = None
    ) -> None:
        """Persist a station's emergency latch: when it was set, or None when the charger
        reported its local reset. Commits at once (durable). Raises NotFound, StaleOwner."""
        params = latch_args(station_id, latched_at)
        epoch = epoch_arg(epoch)

        def latch(conn):
            _check_epoch(conn, station_id, epoch)
            if not conn.execute(
                "UPDATE stations SET emergency_latched_at = ? WHERE id = ?", params
            ).rowcount:
                raise NotFound(f"station {station_id} does not exist")

        await self._write(latch)

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
            new_id = await self._write(
                lambda conn: (
                    conn.execute(
                        "INSERT INTO stations (id, name, tariff, max_power_w, protocol, charge_point_id)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        params,
                    ).lastrowid
                )
            )
        except sqlite3.IntegrityError as exc:
            raise Duplicate(f"station {station_id} already exists") from exc
        return Station(new_id, *params[1:])

    async def add_user(self, name: str) -> User:
        name = check_name(name, "user name")
        new_id = await self._write(
            lambda conn: conn.execute("INSERT INTO users (name) VALUES (?)", (name,)).lastrowid
        )
        return User(new_id, name)

    async def add_card(self, uid: str, user_id: int) -> Card:
        """Normalizes uid; raises Duplicate (UID taken) or NotFound (unknown user)."""
        uid, user_id = card_args(uid, user_id)

        def add(conn):
            users = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchall()
            if not users:
                raise NotFound(f"user {user_id} does not exist")
            conn.execute(
                "INSERT INTO cards (uid, user_id, enabled) VALUES (?, ?, 1)", (uid, user_id)
            )
            return users[0][0]

        try:
            user_name = await self._write(add)
        except sqlite3.IntegrityError as exc:
            raise Duplicate(f"card {uid} already exists") from exc
        return Card(uid, user_id, user_name, True)

    async def set_card_enabled(self, uid: str, enabled: bool) -> None:
        """Raises NotFound for an unknown card."""
        uid = normalize_uid(uid)

        def update(conn):
            if not conn.execute(
                "UPDATE cards SET enabled = ? WHERE uid = ?", (1 if enabled else 0, uid)
            ).rowcount:
                raise NotFound(f"card {uid} does not exist")

        await self._write(update)

    # -- offline authorization (issue 13; server/offline_auth.py) ---------------------------

    async def save_auth_list(
        self, station_id: int, offline: bool, cards: str, created_at: float
    ) -> int:
        """Store a new list for the station under the next version; return that version.
        Raises NotFound for an unknown station."""
        station_id, created_at = auth_list_args(station_id, created_at)

        def save(conn):
            if (
                conn.execute("SELECT 1 FROM stations WHERE id = ?", (station_id,)).fetchone()
                is None
            ):
                raise NotFound(f"station {station_id} does not exist")
            version = conn.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM auth_lists WHERE station_id = ?",
                (station_id,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO auth_lists (station_id, version, offline, cards, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (station_id, version, 1 if offline else 0, cards, created_at),
            )
            return version

        return await self._write(save)

    # -- maintenance -------------------------------------------------------------------------

    async def backup(self, out: str | Path) -> Path:
        """Copy the live database (queued readings flushed first) to `out`, atomically: the
        copy is written next to it and renamed, so `out` is never half-written."""
        out = Path(out)
        if out.exists() and out.resolve() == self.path.resolve():
            raise StorageError("the backup file must not be the database itself")
        await self.flush()
        partial = out.with_name(out.name + ".partial")
        partial.unlink(missing_ok=True)

        def copy(conn):
            target = sqlite3.connect(partial)
            try:
                conn.backup(target)
            finally:
                target.close()

        try:
            await self._db.run(copy)
            partial.replace(out)
        except (sqlite3.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write the backup {out}: {exc}") from exc
        return out


def _prepare(conn: sqlite3.Connection, path: Path) -> str:
    """Pragmas of every connection; returns the journal mode obtained."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return mode

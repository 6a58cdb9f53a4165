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
from .migrate import migrate, sqlite_migrations
from .thread import SqliteThread

log = logging.getLogger("server.storage")

BUSY_TIMEOUT_MS = 5000

_SESSION_COLUMNS = """
    s.id, s.station_id, s.user_id, u.name, s.card_uid, s.started_at, s.ended_at,
    s.kwh, s.cost, s.tariff, s.end_reason, s.energy_state
    FROM sessions s JOIN users u ON u.id = s.user_id
"""
_CARD_COLUMNS = "c.uid, c.user_id, u.name, c.enabled FROM cards c JOIN users u ON u.id = c.user_id"
_ALERT_COLUMNS = "id, station_id, session_id, kind, created_at, detail, acknowledged_at FROM alerts"
_INSERT_READING = (
    "INSERT INTO readings (session_id, ts, v, a, w, wh, kwh, charger_ts, received_at, flag)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STATION_COLUMNS = "id, name, tariff, max_power_w, protocol, charge_point_id FROM stations"
# a progress row carrying an epoch is written only while its station still has that epoch
_UPDATE_PROGRESS = (
    "UPDATE sessions SET kwh = ?, cost = ?, energy_state = ? WHERE id = ? AND ended_at IS NULL"
    " AND (?5 IS NULL OR ?5 = (SELECT owner_epoch FROM stations WHERE id = sessions.station_id))"
)


def _session(row) -> SessionRecord:
    *head, state_json = row
    return SessionRecord(*head, energy_state=decode_state(state_json, row[0]))


def _card(row) -> Card:
    uid, user_id, user_name, enabled = row
    return Card(uid, user_id, user_name, bool(enabled))


def _where(conditions) -> tuple[str, list]:
    """AND of the (sql, name, value, check) conditions whose value is not None;
    `check(value, name)` validates the value bound to the sql's `?` (None: the sql has no `?`)."""
    where, params = ["1"], []
    for sql, name, value, check in conditions:
        if value is not None:
            where.append(sql)
            if check is not None:
                params.append(check(value, name))
    return " AND ".join(where), params


def _session_filters(station_id, user_id, since, until) -> tuple[str, list]:
    return _where(
        [
            ("s.station_id = ?", "station_id", station_id, check_id),
            ("s.user_id = ?", "user_id", user_id, check_id),
            ("s.started_at >= ?", "since", since, check_number),
            ("s.started_at < ?", "until", until, check_number),
        ]
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


class SqliteStorage(Batched):
    """See the module docstring and docs/architecture.md ("Storage contract")."""

    backend = "sqlite"

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

    # -- station ownership -------------------------------------------------------------------

    async def claim_station(self, station_id: int, owner: str) -> int:
        """Make `owner` the station's owner; returns the station's new epoch. NotFound."""
        params = (check_name(owner, "owner"), check_id(station_id, "station id"))

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

    async def station_owner(self, station_id: int) -> tuple[str | None, int]:
        """(owner, epoch) of the station: (None, 0) if never claimed. NotFound."""
        rows = await self._fetch(
            "SELECT owner, owner_epoch FROM stations WHERE id = ?",
            (check_id(station_id, "station id"),),
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

    async def open_sessions(self) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLUMNS} WHERE s.ended_at IS NULL ORDER BY s.id"
        )
        return [_session(row) for row in rows]

    async def get_session(self, session_id: int) -> SessionRecord | None:
        rows = await self._fetch(f"SELECT {_SESSION_COLUMNS} WHERE s.id = ?", (session_id,))
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

        def page(conn):
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} WHERE {condition}"
                " ORDER BY s.started_at DESC, s.id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            total = conn.execute(
                f"SELECT count(*) FROM sessions s WHERE {condition}", params
            ).fetchone()[0]
            return rows, total

        rows, total = await self._db.run(page)
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
        now = check_number(now, "now")
        condition, params = _session_filters(station_id, user_id, since, until)
        rows = await self._fetch(
            "SELECT count(*), coalesce(sum(s.kwh), 0), coalesce(sum(s.cost), 0),"
            " coalesce(sum(max(0, CAST(coalesce(s.ended_at, ?) - s.started_at AS INTEGER))), 0)"
            f" FROM sessions s WHERE {condition}",
            (now, *params),
        )
        count, kwh, cost, duration = rows[0]
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
            " FROM readings WHERE session_id = ?"
            " ORDER BY ts, id",
            (session_id,),
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
        return await self._write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO alerts (station_id, session_id, kind, created_at, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    params,
                ).lastrowid
            )
        )

    async def list_alerts(
        self, station_id: int | None = None, unacknowledged_only: bool = False, limit: int = 100
    ) -> list[Alert]:
        """Alerts newest first."""
        condition, params = _where(
            [
                ("station_id = ?", "station_id", station_id, check_id),
                ("acknowledged_at IS NULL", "", unacknowledged_only or None, None),
            ]
        )
        rows = await self._fetch(
            f"SELECT {_ALERT_COLUMNS} WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, min(check_count(limit, "limit"), MAX_PAGE)),
        )
        return [Alert(*row) for row in rows]

    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool:
        """Mark an alert acknowledged; False if it already was; NotFound if unknown."""
        params = (check_number(acknowledged_at, "acknowledged_at"), check_id(alert_id, "alert_id"))

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
        params = (
            None if latched_at is None else check_number(latched_at, "latched_at"),
            check_id(station_id, "station id"),
        )
        if epoch is not None:
            check_count(epoch, "epoch")

        def latch(conn):
            _check_epoch(conn, station_id, epoch)
            if not conn.execute(
                "UPDATE stations SET emergency_latched_at = ? WHERE id = ?", params
            ).rowcount:
                raise NotFound(f"station {station_id} does not exist")

        await self._write(latch)

    async def emergency_latches(self) -> dict[int, float]:
        """station id -> when its latch was set, for every latched station."""
        rows = await self._fetch(
            "SELECT id, emergency_latched_at FROM stations"
            " WHERE emergency_latched_at IS NOT NULL ORDER BY id"
        )
        return dict(rows)

    async def recent_closed_sessions(self, per_station: int) -> dict[int, list[int]]:
        """station id -> the ids of its last `per_station` closed sessions, oldest first."""
        rows = await self._fetch(
            "SELECT station_id, id FROM (SELECT station_id, id, ROW_NUMBER() OVER"
            " (PARTITION BY station_id ORDER BY id DESC) AS newest FROM sessions"
            " WHERE ended_at IS NOT NULL) WHERE newest <= ? ORDER BY station_id, id",
            (check_count(per_station, "per_station"),),
        )
        recent: dict[int, list[int]] = {}
        for station_id, session_id in rows:
            recent.setdefault(station_id, []).append(session_id)
        return recent

    # -- reference data ----------------------------------------------------------------------

    async def get_station(self, station_id: int) -> Station | None:
        rows = await self._fetch(f"SELECT {_STATION_COLUMNS} WHERE id = ?", (station_id,))
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
        params = (station_id, name, tariff, max_power_w, protocol, charge_point_id)
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
        return Station(new_id, name, tariff, max_power_w, protocol, charge_point_id)

    async def station_by_charge_point(self, charge_point_id: str) -> Station | None:
        """The OCPP station with this charge point id, or None."""
        rows = await self._fetch(
            f"SELECT {_STATION_COLUMNS} WHERE charge_point_id = ?", (charge_point_id,)
        )
        return Station(*rows[0]) if rows else None

    async def _update_station(self, sql: str, params: tuple, station_id: int) -> None:
        def update(conn):
            if not conn.execute(sql, params).rowcount:
                raise NotFound(f"station {station_id} does not exist")

        await self._write(update)

    async def set_max_power(self, station_id: int, max_power_w: float) -> None:
        """The station's plausibility limit in W (0 < W <= 50,000, else ValueError); raises
        NotFound for an unknown station. Applies from the next reading on."""
        params = (check_max_power(max_power_w), check_id(station_id, "station id"))
        await self._update_station(
            "UPDATE stations SET max_power_w = ? WHERE id = ?", params, station_id
        )

    async def station_key_hash(self, station_id: int) -> str | None:
        """The SHA-256 of the station's charger key (server/auth.py), None if none was issued."""
        rows = await self._fetch("SELECT key_hash FROM stations WHERE id = ?", (station_id,))
        return rows[0][0] if rows else None

    async def set_station_key_hash(self, station_id: int, key_hash: str) -> None:
        """Replace the station's key hash (issuing or rotating its key). Raises NotFound."""
        params = (key_hash, check_id(station_id, "station id"))
        await self._update_station(
            "UPDATE stations SET key_hash = ? WHERE id = ?", params, station_id
        )

    async def set_tariff(self, station_id: int, tariff: float) -> None:
        """Raises NotFound for an unknown station. Open sessions keep the tariff they began with."""
        params = (check_tariff(tariff), check_id(station_id, "station id"))
        await self._update_station(
            "UPDATE stations SET tariff = ? WHERE id = ?", params, station_id
        )

    async def add_user(self, name: str) -> User:
        name = check_name(name, "user name")
        new_id = await self._write(
            lambda conn: conn.execute("INSERT INTO users (name) VALUES (?)", (name,)).lastrowid
        )
        return User(new_id, name)

    async def list_users(self) -> list[User]:
        rows = await self._fetch("SELECT id, name FROM users ORDER BY id")
        return [User(*row) for row in rows]

    async def find_card(self, uid: str) -> Card | None:
        """uid must already be normalized (server.uids.normalize_uid)."""
        rows = await self._fetch(f"SELECT {_CARD_COLUMNS} WHERE c.uid = ?", (uid,))
        return _card(rows[0]) if rows else None

    async def add_card(self, uid: str, user_id: int) -> Card:
        """Normalizes uid; raises Duplicate (UID taken) or NotFound (unknown user)."""
        uid, user_id = normalize_uid(uid), check_id(user_id, "user id")

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
        rows = await self._fetch("SELECT offline_auth FROM stations WHERE id = ?", (station_id,))
        return bool(rows[0][0]) if rows else None

    async def set_offline_auth(self, station_id: int, allowed: bool) -> None:
        """Turn offline starts on or off for a station. Raises NotFound."""
        params = (1 if allowed else 0, check_id(station_id, "station id"))
        await self._update_station(
            "UPDATE stations SET offline_auth = ? WHERE id = ?", params, station_id
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
            "SELECT version, offline, cards, created_at FROM auth_lists WHERE station_id = ?"
            " ORDER BY version DESC LIMIT 1",
            (station_id,),
        )
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def auth_list(self, station_id: int, version: int) -> tuple[int, bool, str, float] | None:
        """The list of that version signed for the station, or None."""
        rows = await self._fetch(
            "SELECT version, offline, cards, created_at FROM auth_lists"
            " WHERE station_id = ? AND version = ?",
            (station_id, version),
        )
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def save_auth_list(
        self, station_id: int, offline: bool, cards: str, created_at: float
    ) -> int:
        """Store a new list for the station under the next version; return that version.
        Raises NotFound for an unknown station."""
        station_id = check_id(station_id, "station id")
        created_at = check_number(created_at, "created_at")

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

    async def offline_session(self, station_id: int, local_id: int) -> int | None:
        """The session created for the charger's offline start `local_id`, or None."""
        rows = await self._fetch(
            "SELECT id FROM sessions WHERE station_id = ? AND offline_local_id = ?",
            (station_id, local_id),
        )
        return rows[0][0] if rows else None

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

    # -- one station as stored (a fleet process taking the station over) --------------------

    async def station_as_stored(
        self, station_id: int, recent: int
    ) -> tuple[SessionRecord | None, list[int], bool]:
        """The station's open session (or None), the ids of its last `recent` closed sessions
        (oldest first) and whether its emergency latch is set, read together. NotFound."""
        station_id, recent = check_id(station_id, "station id"), check_count(recent, "recent")

        def read(conn):
            latched = conn.execute(
                "SELECT emergency_latched_at IS NOT NULL FROM stations WHERE id = ?",
                (station_id,),
            ).fetchone()
            if latched is None:
                raise NotFound(f"station {station_id} does not exist")
            open_row = conn.execute(
                f"SELECT {_SESSION_COLUMNS} WHERE s.station_id = ? AND s.ended_at IS NULL"
                " ORDER BY s.id LIMIT 1",
                (station_id,),
            ).fetchone()
            closed = conn.execute(
                "SELECT id FROM sessions WHERE station_id = ? AND ended_at IS NOT NULL"
                " ORDER BY id DESC LIMIT ?",
                (station_id, recent),
            ).fetchall()
            return open_row, [row[0] for row in reversed(closed)], bool(latched[0])

        open_row, closed_ids, latched = await self._db.run(read)
        return (_session(open_row) if open_row else None), closed_ids, latched


def _prepare(conn: sqlite3.Connection, path: Path) -> str:
    """Pragmas of every connection; returns the journal mode obtained."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return mode

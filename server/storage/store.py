"""Storage: the only code that touches SQLite (through aiosqlite).

Transactions. The connection is opened in autocommit mode and every write is one explicit
`BEGIN IMMEDIATE ... COMMIT`, serialized by an asyncio lock so coroutines never interleave
statements inside each other's transactions. Reads take the same lock, so they never see a
half-written batch.

Readings and session progress are batched: `queue_reading`/`queue_progress` only append to
memory; a background flusher writes everything queued in ONE transaction (`executemany`) at
least every `flush_interval` seconds and on `close()`, run as one function in aiosqlite's
thread (one round trip, not one per statement: see `_in_db_thread`). A session's running kwh/cost/energy_state
is written in the same transaction as its readings, so whatever survives a crash is consistent.
If a batch cannot be written (database locked, read-only, disk full) the flusher logs one line,
keeps the batch and retries on the next interval; it logs again when it recovers.

Back-pressure. The queue is bounded: once `max_queued_readings` are queued, `full` is true and
the charger handlers `await wait_for_room()` (one flush shared by every waiter) before reading
their next frame, so under overload the socket buffers (TCP) hold the excess instead of
memory, and a commit happens at least every `max_queued_readings` readings instead of only
when the loop finds time for the flusher's round trips.

Durability. WAL journal, foreign keys on. A committed transaction survives a SIGKILL of the
process in any synchronous mode (the WAL is written before COMMIT returns). For power loss we
mix modes per transaction: session start/end, alerts and reference data are written with
`synchronous=FULL` (the WAL is fsynced at COMMIT: a started or ended session is never lost),
reading batches with `synchronous=NORMAL` (no fsync 4 times a second on a Raspberry Pi's SD
card; a power cut may lose the last seconds of readings and progress, never corrupt the file,
and the next FULL commit syncs them too).

Durability marks (what the server's `ack` to a charger rests on). Every queued write (reading,
progress row) takes the next number of a write sequence; `write_mark()` is the current one. A
batch commit (the periodic flush, `end_session`'s transaction, `close()`) makes everything
taken into it durable, and `await wait_durable(mark)` returns once every write up to `mark`
is committed (survives a SIGKILL). While the database cannot be written it keeps waiting: the
batch is put back and its writes are not durable until a later commit takes them. Immediate
writes (create_session, end_session, add_alert, ...) are committed when their call returns.
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from pathlib import Path

import aiosqlite

from server.energy import DEFAULT_MAX_POWER_W
from server.uids import normalize_uid

from .errors import Duplicate, NotFound, StorageError
from .migrations import load_migrations, migrate
from .pending import Batch, PendingWrites
from .records import Alert, Card, Reading, SessionRecord, Station, User
from .values import (
    check_charge_point_id,
    check_count,
    check_id,
    check_max_power,
    check_name,
    check_number,
    check_optional_number,
    check_tariff,
    encode_state,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
FLUSH_INTERVAL_S = 0.25
MAX_QUEUED_READINGS = 20_000  # ~2 s of a saturated server; a few MB of row tuples
MAX_PAGE = 1000

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
_UPDATE_PROGRESS = (
    "UPDATE sessions SET kwh = ?, cost = ?, energy_state = ? WHERE id = ? AND ended_at IS NULL"
)


def _session(row) -> SessionRecord:
    *head, state_json = row
    try:
        state = json.loads(state_json)
    except ValueError:
        log.warning("storage: session %s has an unreadable energy_state; using {}", row[0])
        state = {}
    return SessionRecord(*head, energy_state=state if isinstance(state, dict) else {})


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


def _card(row) -> Card:
    uid, user_id, user_name, enabled = row
    return Card(uid, user_id, user_name, bool(enabled))


def _write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    """In aiosqlite's thread, inside a transaction: insert the readings, update progress.
    A reading naming no existing session (the only IntegrityError possible: values are checked
    when queued) is dropped and the good rows kept, rather than retrying a poisoned batch
    forever; the rows executemany inserted before the error are rolled back first."""
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
            log.error("storage: dropped %d of %d readings that name no existing session",
                      dropped, len(batch.readings))
    if batch.progress:
        conn.executemany(_UPDATE_PROGRESS, [
            (kwh, cost, state, sid) for sid, (kwh, cost, state) in batch.progress.items()])
    conn.execute("RELEASE batch")


def _commit_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    """In aiosqlite's thread: one whole batch transaction (synchronous=NORMAL, no fsync)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        _write_batch(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _encode_live_state(state) -> str | None:
    """The JSON text of a live energy state when its batch is taken (see queue_progress)."""
    try:
        return encode_state(state.to_dict())
    except ValueError as exc:
        log.error("storage: leaving out a progress row whose energy_state cannot be stored: %s",
                  exc)
        return None


class Storage:
    """See the module docstring and docs/architecture.md ("Storage contract")."""

    def __init__(self, db: aiosqlite.Connection, path: Path, flush_interval: float,
                 max_queued_readings: int = MAX_QUEUED_READINGS) -> None:
        self._db = db
        self.path = path
        self.flush_interval = flush_interval
        self.max_queued_readings = max_queued_readings
        self._lock = asyncio.Lock()
        self._pending = PendingWrites(_encode_live_state)
        self._room_flush: asyncio.Task | None = None
        self._room_made: asyncio.Future | None = None  # resolved when a batch is taken
        self._stopping = asyncio.Event()
        self._failed_flushes = 0
        self._durable = 0  # every write of the sequence up to this number is committed
        self._durable_moved: asyncio.Future | None = None  # resolved when _durable grows
        self._closed = False
        self._flusher: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, flush_interval: float | None = None,
                   max_queued_readings: int | None = None) -> "Storage":
        """Open (creating if needed) the database, migrate it and start the flusher.
        Defaults: FLUSH_INTERVAL_S and MAX_QUEUED_READINGS (read at call time)."""
        flush_interval = check_number(
            FLUSH_INTERVAL_S if flush_interval is None else flush_interval, "flush_interval",
            minimum=0.001)
        max_queued_readings = check_count(
            MAX_QUEUED_READINGS if max_queued_readings is None else max_queued_readings,
            "max_queued_readings")
        if max_queued_readings < 1:
            raise ValueError("max_queued_readings must be at least 1")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = (await db.execute_fetchall("PRAGMA journal_mode = WAL"))[0][0]
            if mode.lower() != "wal":
                log.warning("storage: %s cannot use WAL (journal_mode=%s)", path, mode)
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await migrate(db, load_migrations())
        except BaseException:
            await db.close()
            raise
        storage = cls(db, path, flush_interval, max_queued_readings)
        storage._flusher = asyncio.create_task(storage._flush_periodically(), name="storage-flusher")
        return storage

    async def close(self) -> None:
        """Stop the flusher, write what is queued, close the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._flusher is not None:
            # returns even if the flusher was cancelled (e.g. by a shutdown cancelling tasks)
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._room_flush is not None:
            await asyncio.gather(self._room_flush, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.error("storage: closing with %d readings that could not be written: %s",
                      self._pending.reading_count, exc)
            raise
        finally:
            await self._db.close()

    async def _flush_periodically(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.flush_interval)
            if self._pending and not self._stopping.is_set():
                await self._flush_and_report()

    async def _flush_and_report(self) -> bool:
        """One periodic flush; never raises, returns whether it wrote. One log line when
        writing starts to fail and one when it works again, not one per retry."""
        queued = self._pending.reading_count
        try:
            await self.flush()
        except Exception as exc:
            self._failed_flushes += 1
            if self._failed_flushes == 1:
                log.error("storage: could not write %d queued readings (%s: %s); keeping them "
                          "and retrying every %g s", queued, type(exc).__name__, exc,
                          self.flush_interval)
            return False
        if self._failed_flushes:
            log.warning("storage: wrote %d queued readings after %d failed attempts",
                        queued, self._failed_flushes)
            self._failed_flushes = 0
        return True

    @property
    def full(self) -> bool:
        """True when `max_queued_readings` are waiting: callers should `wait_for_room()`."""
        return self._pending.reading_count >= self.max_queued_readings

    async def wait_for_room(self) -> None:
        """Back-pressure: return once the queue is below its bound again. Every waiter shares
        one flush; while the database cannot be written this keeps waiting (retrying every
        flush_interval), so a caller that stops reading its socket loses nothing."""
        while self.full and not self._closed:
            if self._room_flush is None or self._room_flush.done():
                self._room_flush = asyncio.create_task(self._flush_for_room(),
                                                       name="storage-room-flush")
            if self._room_made is None:
                self._room_made = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room_made)  # shielded: one waiter's cancel is its own

    async def _flush_for_room(self) -> None:
        try:
            if not await self._flush_and_report():
                await asyncio.sleep(self.flush_interval)  # not a hot loop while the disk is full
        finally:
            self._wake_room_waiters()

    def _wake_room_waiters(self) -> None:
        """Called when a batch is taken (the queue is empty again: the waiters read on while it
        is written, so at most two bounds' worth is uncommitted) and when a room flush ends."""
        if self._room_made is not None:
            if not self._room_made.done():
                self._room_made.set_result(None)
            self._room_made = None

    # -- durability marks ----------------------------------------------------------------------

    def write_mark(self) -> int:
        """The write sequence number of the last write queued so far (0: none yet)."""
        return self._pending.mark

    @property
    def durable_mark(self) -> int:
        """Every write up to this number of the sequence is committed."""
        return self._durable

    async def wait_durable(self, mark: int) -> None:
        """Return once every write up to `mark` (a `write_mark()`) is committed. Waits as long
        as it takes: while the database cannot be written it does not return."""
        while self._durable < mark:
            if self._durable_moved is None:
                self._durable_moved = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._durable_moved)  # shielded: one waiter's cancel is its own

    def _committed(self, batch: Batch) -> None:
        """A batch taken at `batch.mark` is committed: wake whoever waits for a mark up to it."""
        if batch.mark > self._durable:
            self._durable = batch.mark
            if self._durable_moved is not None:
                self._durable_moved.set_result(None)
                self._durable_moved = None

    # -- transactions ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self, durable: bool = True):
        """`BEGIN IMMEDIATE ... COMMIT` under the lock; ROLLBACK on any error.
        durable=True fsyncs at COMMIT (synchronous=FULL); see the module docstring."""
        async with self._lock:
            if durable:
                await self._db.execute("PRAGMA synchronous = FULL")
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await self._db.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    await self._db.execute("PRAGMA synchronous = NORMAL")

    async def _fetch(self, sql: str, params=()) -> list:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))

    async def _in_db_thread(self, function, *args):
        """Run `function(sqlite3_connection, *args)` in aiosqlite's thread: ONE round trip
        however many statements it runs. Under load every awaited statement waits for a turn
        of the event loop, which may be busy for long with thousands of queued frames.
        (aiosqlite 0.22 has no public call for this; `_execute` is what its own methods use.)"""
        return await self._db._execute(function, self._db._conn, *args)

    @contextlib.asynccontextmanager
    async def _batch_transaction(self, durable: bool):
        """A transaction that starts by taking everything queued; on failure the batch is put
        back in the queue (in front of newer rows), so nothing is lost."""
        batch = None
        try:
            async with self._transaction(durable) as db:
                batch = self._take_batch()
                await self._in_db_thread(_write_batch, batch)
                yield db
            self._committed(batch)
        except BaseException:
            if batch:
                self._pending.put_back(batch)
            raise

    def _take_batch(self) -> Batch:
        """Take everything queued (under the lock: no other batch is being written)."""
        batch = self._pending.take()
        self._wake_room_waiters()
        if not batch:  # every write up to its mark is committed already (or left out as unstorable)
            self._committed(batch)
        return batch

    # -- sessions ----------------------------------------------------------------------------

    def queue_reading(self, reading: Reading) -> None:
        """Queue a reading for the next batch. Never blocks, never commits. Raises ValueError
        on a value SQLite could not store faithfully (so it cannot poison a batch)."""
        self._check_open()
        if not isinstance(reading, Reading):
            raise TypeError("queue_reading takes a Reading")
        check_id(reading.session_id, "session_id")
        check_number(reading.ts, "ts")
        for name in ("v", "a", "w", "wh", "kwh", "charger_ts", "received_at"):
            check_optional_number(getattr(reading, name), name)
        if reading.flag is not None and not isinstance(reading.flag, str):
            raise ValueError("flag must be text")
        self._pending.add_reading(reading)

    def queue_progress(self, session_id: int, kwh: float, cost: float, energy_state) -> None:
        """Queue the running totals of an open session; coalesced (latest wins), written in
        the same transaction as the next batch of readings.

        `energy_state` is a dict (encoded now) or a live object with `to_dict()` (the session
        core's EnergyAccount), encoded once when the next batch is taken rather than once per
        reading: pass a live object only if kwh and cost are queued again whenever it changes,
        so that at the take it still matches the latest kwh, cost and queued readings."""
        self._check_open()
        state = energy_state if hasattr(energy_state, "to_dict") else encode_state(energy_state)
        self._pending.set_progress(
            check_id(session_id, "session_id"),
            check_number(kwh, "kwh"),
            check_number(cost, "cost"),
            state,
        )

    async def flush(self) -> int:
        """Write every queued reading and progress row in one transaction. Returns the number
        of readings written. On error the batch stays queued and the error is raised."""
        if not self._pending:
            return 0
        queued = self._pending.reading_count
        async with self._lock:  # the whole transaction in one round trip (_in_db_thread)
            batch = self._take_batch()
            try:
                await self._in_db_thread(_commit_batch, batch)
            except BaseException:
                self._pending.put_back(batch)
                raise
            self._committed(batch)
        return queued

    async def create_session(self, station_id: int, user_id: int, card_uid: str,
                             started_at: float, tariff: float, energy_state: dict,
                             offline_local_id: int | None = None) -> int:
        """Insert an open session and commit at once; return its id. `offline_local_id`: the
        charger's id of a session it started offline (unique per station)."""
        params = (check_id(station_id, "station_id"), check_id(user_id, "user_id"),
                  normalize_uid(card_uid), check_number(started_at, "started_at"),
                  check_tariff(tariff), encode_state(energy_state),
                  None if offline_local_id is None else check_id(offline_local_id, "local id"))
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO sessions (station_id, user_id, card_uid, started_at, tariff,"
                " energy_state, offline_local_id) VALUES (?, ?, ?, ?, ?, ?, ?)", params)
            return cursor.lastrowid

    async def end_session(self, session_id: int, ended_at: float, kwh: float, cost: float,
                          reason: str, energy_state: dict) -> bool:
        """Write the queued readings, then close the session, in one transaction.
        Returns False (and changes nothing of the session) if it was already ended;
        raises NotFound for an unknown session."""
        params = (check_number(ended_at, "ended_at"), check_number(kwh, "kwh"),
                  check_number(cost, "cost"), check_name(reason, "reason"),
                  encode_state(energy_state), check_id(session_id, "session_id"))
        async with self._batch_transaction(durable=True) as db:
            cursor = await db.execute(
                "UPDATE sessions SET ended_at = ?, kwh = ?, cost = ?, end_reason = ?,"
                " energy_state = ? WHERE id = ? AND ended_at IS NULL", params)
            if cursor.rowcount:
                return True
            rows = await db.execute_fetchall("SELECT 1 FROM sessions WHERE id = ?",
                                             (session_id,))
        if not rows:
            raise NotFound(f"session {session_id} does not exist")
        return False

    async def open_sessions(self) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLUMNS} WHERE s.ended_at IS NULL ORDER BY s.id")
        return [_session(row) for row in rows]

    async def get_session(self, session_id: int) -> SessionRecord | None:
        rows = await self._fetch(f"SELECT {_SESSION_COLUMNS} WHERE s.id = ?", (session_id,))
        return _session(rows[0]) if rows else None

    async def list_sessions(self, station_id: int | None = None, user_id: int | None = None,
                            since: float | None = None, until: float | None = None,
                            limit: int = 50, offset: int = 0) -> tuple[list[SessionRecord], int]:
        """Sessions newest first, filtered by station, user and start time (since <= started_at
        < until); returns one page and the total number matching."""
        limit, offset = check_count(limit, "limit", MAX_PAGE), check_count(offset, "offset")
        condition, params = _where([
            ("s.station_id = ?", "station_id", station_id, check_id),
            ("s.user_id = ?", "user_id", user_id, check_id),
            ("s.started_at >= ?", "since", since, check_number),
            ("s.started_at < ?", "until", until, check_number),
        ])
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_SESSION_COLUMNS} WHERE {condition}"
                " ORDER BY s.started_at DESC, s.id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset))
            total = (await self._db.execute_fetchall(
                f"SELECT count(*) FROM sessions s WHERE {condition}", params))[0][0]
        return [_session(row) for row in rows], total

    async def readings(self, session_id: int) -> list[Reading]:
        """The committed readings of a session, oldest first (call flush() first to include
        the queued ones)."""
        rows = await self._fetch(
            "SELECT session_id, ts, v, a, w, wh, kwh, charger_ts, received_at, flag"
            " FROM readings WHERE session_id = ?"
            " ORDER BY ts, id", (session_id,))
        return [Reading(*row) for row in rows]

    # -- alerts ------------------------------------------------------------------------------

    async def add_alert(self, station_id: int, session_id: int | None, kind: str,
                        created_at: float, detail: str = "") -> int:
        """Store an alert (e.g. kind "emergency") and commit at once; return its id."""
        if session_id is not None:
            check_id(session_id, "session_id")
        if not isinstance(detail, str):
            raise ValueError("detail must be text")
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO alerts (station_id, session_id, kind, created_at, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (check_id(station_id, "station_id"), session_id, check_name(kind, "kind"),
                 check_number(created_at, "created_at"), detail))
            return cursor.lastrowid

    async def list_alerts(self, station_id: int | None = None,
                          unacknowledged_only: bool = False, limit: int = 100) -> list[Alert]:
        """Alerts newest first."""
        condition, params = _where([
            ("station_id = ?", "station_id", station_id, check_id),
            ("acknowledged_at IS NULL", "", unacknowledged_only or None, None),
        ])
        rows = await self._fetch(
            f"SELECT {_ALERT_COLUMNS} WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, min(check_count(limit, "limit"), MAX_PAGE)))
        return [Alert(*row) for row in rows]

    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool:
        """Mark an alert acknowledged; False if it already was; NotFound if unknown."""
        params = (check_number(acknowledged_at, "acknowledged_at"), check_id(alert_id, "alert_id"))
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE alerts SET acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
                params)
            if cursor.rowcount:
                return True
            rows = await db.execute_fetchall("SELECT 1 FROM alerts WHERE id = ?", (alert_id,))
        if not rows:
            raise NotFound(f"alert {alert_id} does not exist")
        return False

    # -- the emergency latch and recent sessions (what the session core reloads at start) ----

    async def set_emergency_latch(self, station_id: int, latched_at: float | None) -> None:
        """Persist a station's emergency latch: when it was set, or None when the charger
        reported its local reset. Commits at once (durable). Raises NotFound."""
        params = (None if latched_at is None else check_number(latched_at, "latched_at"),
                  check_id(station_id, "station id"))
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE stations SET emergency_latched_at = ? WHERE id = ?", params)
            if not cursor.rowcount:
                raise NotFound(f"station {station_id} does not exist")

    async def emergency_latches(self) -> dict[int, float]:
        """station id -> when its latch was set, for every latched station."""
        rows = await self._fetch("SELECT id, emergency_latched_at FROM stations"
                                 " WHERE emergency_latched_at IS NOT NULL ORDER BY id")
        return dict(rows)

    async def recent_closed_sessions(self, per_station: int) -> dict[int, list[int]]:
        """station id -> the ids of its last `per_station` closed sessions, oldest first."""
        rows = await self._fetch(
            "SELECT station_id, id FROM (SELECT station_id, id, ROW_NUMBER() OVER"
            " (PARTITION BY station_id ORDER BY id DESC) AS newest FROM sessions"
            " WHERE ended_at IS NOT NULL) WHERE newest <= ? ORDER BY station_id, id",
            (check_count(per_station, "per_station"),))
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

    async def add_station(self, name: str, tariff: float, station_id: int | None = None,
                          max_power_w: float = DEFAULT_MAX_POWER_W,
                          charge_point_id: str | None = None) -> Station:
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
            async with self._transaction() as db:
                cursor = await db.execute(
                    "INSERT INTO stations (id, name, tariff, max_power_w, protocol, charge_point_id)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (station_id, name, tariff, max_power_w, protocol, charge_point_id))
        except sqlite3.IntegrityError as exc:
            raise Duplicate(f"station {station_id} already exists") from exc
        return Station(cursor.lastrowid, name, tariff, max_power_w, protocol, charge_point_id)

    async def station_by_charge_point(self, charge_point_id: str) -> Station | None:
        """The OCPP station with this charge point id, or None."""
        rows = await self._fetch(f"SELECT {_STATION_COLUMNS} WHERE charge_point_id = ?",
                                 (charge_point_id,))
        return Station(*rows[0]) if rows else None

    async def set_max_power(self, station_id: int, max_power_w: float) -> None:
        """The station's plausibility limit in W (0 < W <= 50,000, else ValueError); raises
        NotFound for an unknown station. Applies from the next reading on."""
        params = (check_max_power(max_power_w), check_id(station_id, "station id"))
        async with self._transaction() as db:
            cursor = await db.execute("UPDATE stations SET max_power_w = ? WHERE id = ?", params)
            if not cursor.rowcount:
                raise NotFound(f"station {station_id} does not exist")

    async def station_key_hash(self, station_id: int) -> str | None:
        """The SHA-256 of the station's charger key (server/auth.py), None if none was issued."""
        rows = await self._fetch("SELECT key_hash FROM stations WHERE id = ?", (station_id,))
        return rows[0][0] if rows else None

    async def set_station_key_hash(self, station_id: int, key_hash: str) -> None:
        """Replace the station's key hash (issuing or rotating its key). Raises NotFound."""
        params = (key_hash, check_id(station_id, "station id"))
        async with self._transaction() as db:
            cursor = await db.execute("UPDATE stations SET key_hash = ? WHERE id = ?", params)
            if not cursor.rowcount:
                raise NotFound(f"station {station_id} does not exist")

    async def set_tariff(self, station_id: int, tariff: float) -> None:
        """Raises NotFound for an unknown station. Open sessions keep the tariff they began with."""
        params = (check_tariff(tariff), check_id(station_id, "station id"))
        async with self._transaction() as db:
            cursor = await db.execute("UPDATE stations SET tariff = ? WHERE id = ?", params)
            if not cursor.rowcount:
                raise NotFound(f"station {station_id} does not exist")

    async def add_user(self, name: str) -> User:
        name = check_name(name, "user name")
        async with self._transaction() as db:
            cursor = await db.execute("INSERT INTO users (name) VALUES (?)", (name,))
        return User(cursor.lastrowid, name)

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
        try:
            async with self._transaction() as db:
                users = await db.execute_fetchall("SELECT name FROM users WHERE id = ?",
                                                  (user_id,))
                if not users:
                    raise NotFound(f"user {user_id} does not exist")
                await db.execute("INSERT INTO cards (uid, user_id, enabled) VALUES (?, ?, 1)",
                                 (uid, user_id))
        except sqlite3.IntegrityError as exc:
            raise Duplicate(f"card {uid} already exists") from exc
        return Card(uid, user_id, users[0][0], True)

    async def set_card_enabled(self, uid: str, enabled: bool) -> None:
        """Raises NotFound for an unknown card."""
        uid = normalize_uid(uid)
        async with self._transaction() as db:
            cursor = await db.execute("UPDATE cards SET enabled = ? WHERE uid = ?",
                                      (1 if enabled else 0, uid))
            if not cursor.rowcount:
                raise NotFound(f"card {uid} does not exist")

    async def list_cards(self) -> list[Card]:
        rows = await self._fetch(f"SELECT {_CARD_COLUMNS} ORDER BY u.name, c.uid")
        return [_card(row) for row in rows]

    async def is_empty(self) -> bool:
        """True when there are no stations, users or cards (a fresh database)."""
        rows = await self._fetch(
            "SELECT (SELECT count(*) FROM stations) + (SELECT count(*) FROM users)"
            " + (SELECT count(*) FROM cards)")
        return rows[0][0] == 0

    # -- offline authorization (issue 13; server/offline_auth.py) ---------------------------

    async def offline_auth(self, station_id: int) -> bool | None:
        """Whether the station's charger may start a listed card offline; None: no station."""
        rows = await self._fetch("SELECT offline_auth FROM stations WHERE id = ?", (station_id,))
        return bool(rows[0][0]) if rows else None

    async def set_offline_auth(self, station_id: int, allowed: bool) -> None:
        """Turn offline starts on or off for a station. Raises NotFound."""
        params = (1 if allowed else 0, check_id(station_id, "station id"))
        async with self._transaction() as db:
            cursor = await db.execute("UPDATE stations SET offline_auth = ? WHERE id = ?", params)
            if not cursor.rowcount:
                raise NotFound(f"station {station_id} does not exist")

    async def offline_candidates(self) -> list[tuple[str, float | None]]:
        """Every enabled card with the start of its latest session (None: never used)."""
        return await self._fetch(
            "SELECT c.uid, (SELECT max(s.started_at) FROM sessions s WHERE s.card_uid = c.uid)"
            " FROM cards c WHERE c.enabled = 1")

    async def latest_auth_list(self, station_id: int) -> tuple[int, bool, str, float] | None:
        """The newest list signed for the station: (version, offline, cards, created_at)."""
        rows = await self._fetch(
            "SELECT version, offline, cards, created_at FROM auth_lists WHERE station_id = ?"
            " ORDER BY version DESC LIMIT 1", (station_id,))
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def auth_list(self, station_id: int, version: int) -> tuple[int, bool, str, float] | None:
        """The list of that version signed for the station, or None."""
        rows = await self._fetch(
            "SELECT version, offline, cards, created_at FROM auth_lists"
            " WHERE station_id = ? AND version = ?", (station_id, version))
        return (rows[0][0], bool(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    async def save_auth_list(self, station_id: int, offline: bool, cards: str,
                             created_at: float) -> int:
        """Store a new list for the station under the next version; return that version."""
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT coalesce(max(version), 0) + 1 FROM auth_lists WHERE station_id = ?",
                (station_id,))
            await db.execute(
                "INSERT INTO auth_lists (station_id, version, offline, cards, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (station_id, rows[0][0], 1 if offline else 0, cards, created_at))
        return rows[0][0]

    async def offline_session(self, station_id: int, local_id: int) -> int | None:
        """The session created for the charger's offline start `local_id`, or None."""
        rows = await self._fetch(
            "SELECT id FROM sessions WHERE station_id = ? AND offline_local_id = ?",
            (station_id, local_id))
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
        try:
            target = sqlite3.connect(partial, check_same_thread=False)  # used in aiosqlite's thread
            try:
                async with self._lock:
                    await self._db.backup(target)
            finally:
                target.close()
            partial.replace(out)
        except (sqlite3.Error, OSError) as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"cannot write the backup {out}: {exc}") from exc
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("storage is closed")

"""The backend-neutral batcher: queued readings and progress, the periodic flusher,
back-pressure and the durability marks. No SQL: a backend gives it one coroutine,
`write(batch)`, that commits a whole batch in ONE transaction (or raises, changing nothing).

Readings and session progress are batched: `queue_reading`/`queue_progress` only append to
memory; the flusher writes everything queued in one transaction at least every
`flush_interval` seconds and on `close()`. A session's running kwh/cost/energy_state is written
in the same transaction as its readings, so whatever survives a crash is consistent. If a batch
cannot be written (database locked, read-only, disk full, server gone) the flusher logs one
line, keeps the batch and retries on the next interval; it logs again when it recovers.

Batches are written one at a time, in order, under `lock` (a backend that writes more than
batches in a transaction, like `end_session`, takes the batch under the same lock with
`taken()`): a later batch never commits before an earlier one, so the marks stay true.

Back-pressure. The queue is bounded: once `max_queued_readings` are queued, `full` is true and
the charger handlers `await wait_for_room()` (one flush shared by every waiter) before reading
their next frame, so under overload the socket buffers (TCP) hold the excess instead of
memory, and a commit happens at least every `max_queued_readings` readings.

Durability marks (what the server's `ack` to a charger rests on). Every queued write (reading,
progress row) takes the next number of a write sequence; `write_mark()` is the current one. A
batch commit makes everything taken into it durable, and `await wait_durable(mark)` returns once
every write up to `mark` is committed (survives a SIGKILL of the server). While the database
cannot be written it keeps waiting: the batch is put back and its writes are not durable until
a later commit takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .pending import Batch, PendingWrites
from .records import Reading
from .values import check_count, check_id, check_number, check_optional_number, encode_state

log = logging.getLogger("server.storage")

FLUSH_INTERVAL_S = 0.25
MAX_QUEUED_READINGS = 20_000  # ~2 s of a saturated server; a few MB of row tuples


def check_batching(flush_interval, max_queued_readings) -> tuple[float, int]:
    """The two knobs, validated; None: the module defaults (read at call time)."""
    flush_interval = check_number(
        FLUSH_INTERVAL_S if flush_interval is None else flush_interval,
        "flush_interval",
        minimum=0.001,
    )
    max_queued_readings = check_count(
        MAX_QUEUED_READINGS if max_queued_readings is None else max_queued_readings,
        "max_queued_readings",
    )
    if max_queued_readings < 1:
        raise ValueError("max_queued_readings must be at least 1")
    return flush_interval, max_queued_readings


def _encode_live_state(state) -> str | None:
    """The JSON text of a live energy state when its batch is taken (see queue_progress)."""
    try:
        return encode_state(state.to_dict())
    except ValueError as exc:
        log.error(
            "storage: leaving out a progress row whose energy_state cannot be stored: %s", exc
        )
        return None


class Batcher:
    """See the module docstring. `write(batch)` commits one batch (called under `lock`)."""

    def __init__(
        self,
        write: Callable[[Batch], Awaitable[None]],
        flush_interval: float,
        max_queued_readings: int,
    ) -> None:
        self._write = write
        self.flush_interval = flush_interval
        self.max_queued_readings = max_queued_readings
        self.lock = asyncio.Lock()
        self._pending = PendingWrites(_encode_live_state)
        self._room_flush: asyncio.Task | None = None
        self._room_made: asyncio.Future | None = None  # resolved when a batch is taken
        self._stopping = asyncio.Event()
        self.failed_flushes = 0
        self._durable = 0  # every write of the sequence up to this number is committed
        self._durable_moved: asyncio.Future | None = None  # resolved when _durable grows
        self.closed = False
        self._flusher: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_periodically(), name="storage-flusher")

    @property
    def flusher(self) -> asyncio.Task | None:
        return self._flusher

    async def close(self) -> None:
        """Stop the flusher and write what is queued (raises if that last write fails)."""
        self.closed = True
        self._stopping.set()
        if self._flusher is not None:
            # returns even if the flusher was cancelled (e.g. by a shutdown cancelling tasks)
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._room_flush is not None:
            await asyncio.gather(self._room_flush, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.error(
                "storage: closing with %d readings that could not be written: %s",
                self._pending.reading_count,
                exc,
            )
            raise

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
            self.failed_flushes += 1
            if self.failed_flushes == 1:
                log.error(
                    "storage: could not write %d queued readings (%s: %s); keeping them "
                    "and retrying every %g s",
                    queued,
                    type(exc).__name__,
                    exc,
                    self.flush_interval,
                )
            return False
        if self.failed_flushes:
            log.warning(
                "storage: wrote %d queued readings after %d failed attempts",
                queued,
                self.failed_flushes,
            )
            self.failed_flushes = 0
        return True

    # -- queueing ----------------------------------------------------------------------------

    def queue_reading(self, reading: Reading) -> None:
        """Queue a reading for the next batch. Never blocks, never commits. Raises ValueError
        on a value the database could not store faithfully (so it cannot poison a batch)."""
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

    def queue_progress(
        self, session_id: int, kwh: float, cost: float, energy_state, epoch: int | None = None
    ) -> None:
        """Queue the running totals of an open session; coalesced (latest wins), written in
        the same transaction as the next batch of readings.

        `energy_state` is a dict (encoded now) or a live object with `to_dict()` (the session
        core's EnergyAccount), encoded once when the next batch is taken rather than once per
        reading: pass a live object only if kwh and cost are queued again whenever it changes,
        so that at the take it still matches the latest kwh, cost and queued readings.
        `epoch`: the caller's ownership epoch of the session's station (claim_station); the
        row is left out of the batch (logged) if the station's epoch moved on."""
        self._check_open()
        state = energy_state if hasattr(energy_state, "to_dict") else encode_state(energy_state)
        if epoch is not None:
            check_count(epoch, "epoch")
        self._pending.set_progress(
            check_id(session_id, "session_id"),
            check_number(kwh, "kwh"),
            check_number(cost, "cost"),
            state,
            epoch,
        )

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("storage is closed")

    # -- writing -----------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write every queued reading and progress row in one transaction. Returns the number
        of readings written. On error the batch stays queued and the error is raised."""
        if not self._pending:
            return 0
        queued = self._pending.reading_count
        async with self.lock, self.taken() as batch:
            if batch:
                await self.write_through(batch, self._write(batch))
        return queued

    @staticmethod
    async def write_through(batch: Batch, write):
        """Await `write`, the coroutine whose transaction commits `batch`, to its end even if
        the caller is cancelled meanwhile: a transaction in flight (on SQLite's thread, on the
        PostgreSQL server) may commit whatever happens to the caller, so the batch is marked
        committed when it did and `taken()` never puts back (and writes twice) a batch that
        is in the database. The cancel is raised once the outcome is known."""

        async def marked():
            result = await write
            batch.committed = True
            return result

        task = asyncio.ensure_future(marked())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([task])
            raise

    @contextlib.asynccontextmanager
    async def taken(self):
        """Take everything queued (the caller holds `lock`); yields the batch for the caller to
        write in its transaction (through `write_through`). Committed when the block ends
        normally; put back in front of newer rows when it raises, so nothing is lost, unless
        its commit happened (`batch.committed`)."""
        assert self.lock.locked(), "a batch is taken under the batcher's lock"
        batch = self._pending.take()
        self._wake_room_waiters()
        try:
            yield batch
        except BaseException:
            if batch.committed:  # cancelled after its commit (write_through)
                self._committed(batch)
            else:
                self._pending.put_back(batch)
            raise
        self._committed(batch)

    @property
    def reading_count(self) -> int:
        return self._pending.reading_count

    # -- back-pressure -----------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """True when `max_queued_readings` are waiting: callers should `wait_for_room()`."""
        return self._pending.reading_count >= self.max_queued_readings

    async def wait_for_room(self) -> None:
        """Back-pressure: return once the queue is below its bound again. Every waiter shares
        one flush; while the database cannot be written this keeps waiting (retrying every
        flush_interval), so a caller that stops reading its socket loses nothing."""
        while self.full and not self.closed:
            if self._room_flush is None or self._room_flush.done():
                self._room_flush = asyncio.create_task(
                    self._flush_for_room(), name="storage-room-flush"
                )
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


class Batched:
    """The batcher's calls on a backend (`self._batcher`), so a backend class states only its
    SQL. The contract's batching half (server/storage/contract.py)."""

    _batcher: Batcher

    @property
    def flush_interval(self) -> float:
        return self._batcher.flush_interval

    @property
    def max_queued_readings(self) -> int:
        return self._batcher.max_queued_readings

    def queue_reading(self, reading: Reading) -> None:
        self._batcher.queue_reading(reading)

    def queue_progress(
        self, session_id: int, kwh: float, cost: float, energy_state, epoch: int | None = None
    ) -> None:
        self._batcher.queue_progress(session_id, kwh, cost, energy_state, epoch)

    async def flush(self) -> int:
        return await self._batcher.flush()

    @property
    def full(self) -> bool:
        return self._batcher.full

    async def wait_for_room(self) -> None:
        await self._batcher.wait_for_room()

    def write_mark(self) -> int:
        return self._batcher.write_mark()

    @property
    def durable_mark(self) -> int:
        return self._batcher.durable_mark

    async def wait_durable(self, mark: int) -> None:
        await self._batcher.wait_durable(mark)

    @property
    def failed_flushes(self) -> int:
        """How many periodic flushes in a row have failed (0: the last one worked)."""
        return self._batcher.failed_flushes

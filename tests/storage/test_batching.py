"""Readings and progress are written in batches: one transaction per batch, at least every
flush_interval, on close, and before a session ends."""

import asyncio
import logging
import sqlite3
import threading

import pytest

from server.energy import EnergyAccount
from server.storage import NotFound, open_storage
from server.storage.sqlite import store as sqlite_store

from .conftest import committed_readings, outside, reading, refuse_writes, wait_until


async def trace_statements(storage):
    """Record every SQL statement the SQLite storage's own connection runs."""
    statements = []
    await storage._db.run(lambda conn: conn.set_trace_callback(statements.append))
    return statements


async def open_session(storage) -> int:
    """A session open on a new station, for a user of its own."""
    station = await storage.add_station("S", 7.0)
    user = await storage.add_user("U")
    return await storage.create_session(station.id, user.id, "CARD1", 1.0, 7.0, {})


def transactions(statements):
    return [s for s in statements if s.strip().upper() in ("COMMIT", "ROLLBACK")]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_batch_of_readings_and_progress_is_one_transaction(storage, session_id, target):
    statements = await trace_statements(storage)
    for i in range(200):
        storage.queue_reading(reading(session_id, i))
        storage.queue_progress(session_id, i / 1000, i / 1000 * 7.0, {"last": i})
    assert await committed_readings(target, session_id) == []  # queueing commits nothing
    assert await storage.flush() == 200
    assert transactions(statements) == ["COMMIT"]
    assert sum(s.startswith("INSERT INTO readings") for s in statements) == 200
    # progress is coalesced: one UPDATE for the session, carrying the latest values
    assert sum(s.startswith("UPDATE sessions") for s in statements) == 1
    assert len(await committed_readings(target, session_id)) == 200
    assert await outside(
        target, "SELECT kwh, energy_state FROM sessions WHERE id = ?", (session_id,)
    ) == [(0.199, '{"last":199}')]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_postgres_batch_and_a_session_end_are_each_one_transaction(target):
    """PostgreSQL stamps every row with the id of the transaction that wrote it (xmin)."""
    storage = await open_storage(target, flush_interval=3600)  # only the test's flush writes
    try:
        session_id = await open_session(storage)
        await _one_batch_then_the_end(storage, session_id, target)
    finally:
        await storage.close()


async def _one_batch_then_the_end(storage, session_id, target):
    for i in range(200):
        storage.queue_reading(reading(session_id, i))
        storage.queue_progress(session_id, i / 1000, i / 1000 * 7.0, {"last": i})
    assert await committed_readings(target, session_id) == []  # queueing commits nothing
    assert await storage.flush() == 200
    writers = await outside(target, "SELECT DISTINCT xmin::text FROM readings")
    assert len(writers) == 1
    assert await outside(target, "SELECT xmin::text, kwh, energy_state FROM sessions") == [
        (writers[0][0], 0.199, '{"last":199}')
    ]
    for i in range(200, 230):
        storage.queue_reading(reading(session_id, i))
    await storage.end_session(session_id, 1_700_000_300.0, 0.23, 1.61, "local_stop", {})
    [(ending,)] = await outside(target, "SELECT xmin::text FROM sessions")
    assert await outside(
        target, "SELECT DISTINCT xmin::text FROM readings WHERE ts >= ?", (1_700_000_200.0,)
    ) == [(ending,)]


async def count_committed(target, session_id):
    return len(await committed_readings(target, session_id))


async def test_the_flusher_writes_queued_readings_without_being_asked(target):
    storage = await open_storage(target, flush_interval=0.05)
    try:
        session_id = await open_session(storage)
        for i in range(10):
            storage.queue_reading(reading(session_id, i))
        await wait_until(
            lambda: _is(count_committed(target, session_id), 10),
            what="the flusher to commit the readings",
        )
    finally:
        await storage.close()


async def test_close_writes_what_is_still_queued(target):
    storage = await open_storage(target, flush_interval=3600)
    station = await storage.add_station("S", 7.0)
    user = await storage.add_user("U")
    session_id = await storage.create_session(station.id, user.id, "CARD1", 1.0, 7.0, {})
    for i in range(25):
        storage.queue_reading(reading(session_id, i))
    storage.queue_progress(session_id, 0.024, 0.17, {"n": 25})
    await storage.close()
    assert len(await committed_readings(target, session_id)) == 25
    assert await outside(target, "SELECT kwh, cost FROM sessions") == [(0.024, 0.17)]
    with pytest.raises(RuntimeError, match="closed"):
        storage.queue_reading(reading(session_id, 99))


async def test_close_still_writes_the_queue_when_the_flusher_task_was_cancelled(target):
    storage = await open_storage(target, flush_interval=3600)
    station = await storage.add_station("S", 7.0)
    user = await storage.add_user("U")
    session_id = await storage.create_session(station.id, user.id, "CARD1", 1.0, 7.0, {})
    storage.queue_reading(reading(session_id, 1))
    storage._batcher.flusher.cancel()  # what a shutdown that cancels every task does
    await storage.close()
    assert len(await committed_readings(target, session_id)) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_end_session_writes_the_queued_readings_first_in_the_same_transaction(
    storage, session_id, target
):
    statements = await trace_statements(storage)
    for i in range(30):
        storage.queue_reading(reading(session_id, i))
    storage.queue_progress(session_id, 0.029, 0.2, {"n": 29})
    assert (
        await storage.end_session(session_id, 1_700_000_100.0, 0.03, 0.21, "local_stop", {"n": 30})
        is True
    )
    assert transactions(statements) == ["COMMIT"]
    assert len(await committed_readings(target, session_id)) == 30
    ended = await storage.get_session(session_id)
    assert (ended.kwh, ended.cost, ended.end_reason, ended.energy_state) == (
        0.03,
        0.21,
        "local_stop",
        {"n": 30},
    )
    assert await storage.open_sessions() == []


async def test_ending_a_session_twice_changes_nothing_and_unknown_sessions_are_reported(
    storage, session_id
):
    await storage.end_session(session_id, 1_700_000_100.0, 1.0, 7.0, "local_stop", {})
    assert (
        await storage.end_session(session_id, 1_700_000_200.0, 2.0, 14.0, "remote_stop", {})
        is False
    )
    again = await storage.get_session(session_id)
    assert (again.ended_at, again.kwh, again.end_reason) == (1_700_000_100.0, 1.0, "local_stop")
    with pytest.raises(NotFound, match="session 999 does not exist"):
        await storage.end_session(999, 1.0, 0.0, 0.0, "local_stop", {})


async def test_late_progress_never_overwrites_the_final_totals(storage, session_id):
    await storage.end_session(session_id, 1_700_000_100.0, 1.5, 10.5, "local_stop", {"final": 1})
    storage.queue_progress(session_id, 1.2, 8.4, {"stale": 1})
    await storage.flush()
    ended = await storage.get_session(session_id)
    assert (ended.kwh, ended.cost, ended.energy_state) == (1.5, 10.5, {"final": 1})


@pytest.mark.parametrize(
    "bad", [dict(ts=float("nan")), dict(w=float("inf")), dict(session_id=0), dict(kwh="1.0")]
)
async def test_a_bad_reading_is_refused_at_the_caller_and_cannot_poison_the_batch(
    storage, session_id, target, bad
):
    good = reading(session_id, 1)
    storage.queue_reading(good)
    fields = dict(vars(good), **bad)
    with pytest.raises(ValueError):
        storage.queue_reading(type(good)(**fields))
    with pytest.raises(ValueError):
        storage.queue_progress(session_id, float("nan"), 0.0, {})
    with pytest.raises(ValueError):
        storage.queue_progress(session_id, 0.1, 0.7, {"x": float("nan")})
    await storage.flush()
    assert len(await committed_readings(target, session_id)) == 1


async def test_readings_for_a_session_that_does_not_exist_are_dropped_and_the_rest_kept(
    storage, session_id, target, caplog
):
    storage.queue_reading(reading(session_id, 1))
    storage.queue_reading(reading(4242, 2))
    storage.queue_reading(reading(session_id, 3))
    await storage.flush()
    assert [ts for ts, _ in await committed_readings(target, session_id)] == [
        1_700_000_001.0,
        1_700_000_003.0,
    ]
    assert await outside(target, "SELECT count(*) FROM readings") == [(2,)]
    assert "dropped 1 of 3 readings" in caplog.text


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_flusher_keeps_the_batch_while_the_database_is_locked_and_writes_it_later(
    target, caplog, monkeypatch
):
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 50)
    storage = await open_storage(target, flush_interval=0.05)
    try:
        station = await storage.add_station("S", 7.0)
        user = await storage.add_user("U")
        session_id = await storage.create_session(station.id, user.id, "CARD1", 1.0, 7.0, {})
        blocker = sqlite3.connect(target, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with caplog.at_level(logging.ERROR, logger="server.storage"):
            for i in range(40):
                storage.queue_reading(reading(session_id, i))
            await wait_until(
                lambda: "could not write 40 queued readings" in caplog.text,
                what="the flush failure to be logged",
            )
            storage.queue_reading(reading(session_id, 40))  # queued during the outage
        blocker.execute("ROLLBACK")
        blocker.close()
        await wait_until(
            lambda: _is(count_committed(target, session_id), 41),
            what="the kept batch to be written after the lock is released",
        )
        assert [ts for ts, _ in await committed_readings(target, session_id)] == [
            1_700_000_000.0 + i for i in range(41)
        ]
        # the flusher logs its recovery once the commit has returned: a moment after the rows
        # are visible to another connection
        await wait_until(lambda: "failed attempts" in caplog.text, what="the recovery to be logged")
        assert "after" in caplog.text
        failures = [r for r in caplog.records if "could not write" in r.getMessage()]
        assert len(failures) == 1  # one line per outage, not one per retry
    finally:
        await storage.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_flusher_survives_a_full_disk_and_writes_the_batch_when_space_returns(
    storage, session_id, target, caplog
):
    pages = (await storage._fetch("PRAGMA page_count"))[0][0]
    await storage._fetch(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    for i in range(2000):
        storage.queue_reading(reading(session_id, i))
    await wait_until(
        lambda: "database or disk is full" in caplog.text, what="the disk-full error to be logged"
    )
    assert await committed_readings(target, session_id) == []
    assert storage._batcher.flusher is not None and not storage._batcher.flusher.done()
    await storage._fetch("PRAGMA max_page_count = 1073741823")  # space again
    await wait_until(
        lambda: _is(count_committed(target, session_id), 2000),
        what="the kept batch to be written once there is space",
    )


async def test_open_sessions_come_back_after_reopening_with_their_energy_state(target):
    storage = await open_storage(target)
    station = await storage.add_station("S", 7.0)
    user = await storage.add_user("Juan Pérez")
    state = {"mode": "register", "wh0": 123456.5, "last_ts": 1_700_000_010.0, "resets": [1, 2]}
    first = await storage.create_session(station.id, user.id, "CARD1", 1_700_000_000.0, 7.0, {})
    second = await storage.create_session(station.id, user.id, "CARD2", 1_700_000_001.0, 7.0, {})
    storage.queue_progress(first, 0.25, 1.75, state)
    await storage.end_session(second, 1_700_000_050.0, 0.0, 0.0, "local_stop", {})
    await storage.close()

    storage = await open_storage(target)
    try:
        [reloaded] = await storage.open_sessions()
        assert (
            reloaded.id,
            reloaded.user_name,
            reloaded.card_uid,
            reloaded.kwh,
            reloaded.cost,
            reloaded.tariff,
            reloaded.energy_state,
        ) == (first, "Juan Pérez", "CARD1", 0.25, 1.75, 7.0, state)
        assert reloaded.is_open
    finally:
        await storage.close()


async def test_a_full_queue_makes_the_writer_wait_for_a_flush_and_loses_nothing(target):
    storage = await open_storage(target, flush_interval=3600, max_queued_readings=10)
    try:
        session_id = await open_session(storage)
        for i in range(9):
            storage.queue_reading(reading(session_id, i))
        assert not storage.full
        await storage.wait_for_room()  # room left: returns at once, writes nothing
        assert await committed_readings(target, session_id) == []
        storage.queue_reading(reading(session_id, 9))
        assert storage.full
        async with storage._batcher.lock:  # another batch is being written: no flush yet
            waiter = asyncio.create_task(storage.wait_for_room())
            for _ in range(20):
                await asyncio.sleep(0)
            assert not waiter.done()
            assert await committed_readings(target, session_id) == []
        await asyncio.wait_for(waiter, 15)
        assert not storage.full
        # the flush timer is an hour: only the back-pressure flush writes these
        await wait_until(
            lambda: _is(count_committed(target, session_id), 10),
            what="the back-pressure flush to commit",
        )
        storage.queue_reading(reading(session_id, 10))
    finally:
        await storage.close()
    assert [ts for ts, _ in await committed_readings(target, session_id)] == [
        1_700_000_000.0 + i for i in range(11)
    ]


async def test_the_latest_energy_state_is_encoded_when_the_batch_is_written(
    storage, session_id, target
):
    """A live state object is encoded once, at the flush: what is saved matches the last
    reading queued before it, not the state of the first one."""
    account = EnergyAccount()
    for i in range(5):
        account.add(1_700_000_000.0 + i, 3600.0, 1000.0 + i, now=1_700_000_000.0 + i)
        storage.queue_reading(reading(session_id, i, kwh=account.kwh))
        storage.queue_progress(session_id, account.kwh, account.kwh * 7.0, account)
    await storage.flush()
    account.add(1_700_000_010.0, 3600.0, 1010.0, now=1_700_000_010.0)  # after the flush: not saved
    saved = await storage.get_session(session_id)
    assert saved.kwh == 0.004 and {
        key: saved.energy_state[key]
        for key in ("wh", "last_ts", "last_w", "last_register_wh", "timeline_ts")
    } == {
        "wh": 4.0,
        "last_ts": 1_700_000_004.0,
        "last_w": 3600.0,
        "last_register_wh": 1004.0,
        "timeline_ts": 1_700_000_004.0,
    }
    assert EnergyAccount.from_dict(saved.energy_state).kwh == saved.kwh


async def _is(count, expected) -> bool:
    return await count == expected


@pytest.mark.parametrize("backend", ["postgres"])
async def test_the_flusher_keeps_the_batch_while_postgres_refuses_writes_and_writes_it_later(
    target, caplog
):
    storage = await open_storage(target, flush_interval=0.05)
    try:
        session_id = await open_session(storage)
        await refuse_writes(storage, target, True)
        with caplog.at_level(logging.ERROR, logger="server.storage"):
            for i in range(40):
                storage.queue_reading(reading(session_id, i))
            await wait_until(
                lambda: "could not write 40 queued readings" in caplog.text,
                what="the flush failure to be logged",
            )
            storage.queue_reading(reading(session_id, 40))  # queued during the outage
        assert await committed_readings(target, session_id) == []
        await refuse_writes(storage, target, False)
        await wait_until(
            lambda: _is(count_committed(target, session_id), 41),
            what="the kept batch to be written once writes work again",
        )
        assert [ts for ts, _ in await committed_readings(target, session_id)] == [
            1_700_000_000.0 + i for i in range(41)
        ]
        failures = [r for r in caplog.records if "could not write" in r.getMessage()]
        assert len(failures) == 1  # one line per outage, not one per retry
    finally:
        await storage.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_flush_cancelled_while_its_commit_is_in_flight_neither_loses_nor_repeats_rows(
    target,
):
    """A shutdown may cancel a flush whose transaction is already running on the database's
    thread: the commit happens anyway, so the batch must count as written, not be put back
    and stored a second time."""
    storage = await open_storage(target, flush_interval=3600)
    try:
        session_id = await open_session(storage)
        for i in range(5):
            storage.queue_reading(reading(session_id, i))
        gate = threading.Event()
        busy = asyncio.ensure_future(storage._db.run(lambda conn: gate.wait(30)))  # thread busy
        flush = asyncio.create_task(storage.flush())  # its commit waits behind `busy`
        await asyncio.sleep(0.05)
        flush.cancel()
        gate.set()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await flush
        storage.queue_reading(reading(session_id, 5))
        await storage.flush()
        await asyncio.wait_for(storage.wait_durable(storage.write_mark()), 10)
    finally:
        await storage.close()
    assert [ts for ts, _ in await committed_readings(target, session_id)] == [
        1_700_000_000.0 + i for i in range(6)
    ]

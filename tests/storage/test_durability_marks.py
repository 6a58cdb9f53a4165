"""Durability marks: `write_mark()` numbers every queued write, `wait_durable(mark)` returns only
once the rows up to it are committed (seen by another connection to the file), never while the
database cannot be written. What the server's `ack` to a charger rests on."""

import asyncio

from server.storage import open_storage

from .conftest import committed_readings, reading, refuse_writes, wait_until


async def test_every_queued_write_takes_the_next_mark_and_a_flush_makes_them_durable(
    storage, session_id, target
):
    start = storage.write_mark()
    storage.queue_reading(reading(session_id, 0))
    storage.queue_progress(session_id, 0.001, 0.007, {"mode": "register"})
    storage.queue_reading(reading(session_id, 1))
    mark = storage.write_mark()
    assert mark == start + 3
    waiter = asyncio.create_task(storage.wait_durable(mark))
    await storage.flush()
    await asyncio.wait_for(waiter, 10)
    assert storage.durable_mark >= mark
    assert len(await committed_readings(target, session_id)) == 2


async def test_a_mark_already_durable_returns_at_once(storage, session_id):
    await storage.wait_durable(storage.write_mark())  # nothing queued yet
    storage.queue_reading(reading(session_id, 0))
    await storage.flush()
    await asyncio.wait_for(storage.wait_durable(storage.write_mark()), 10)


async def test_ending_a_session_makes_the_readings_queued_before_it_durable(
    storage, session_id, target
):
    storage.queue_reading(reading(session_id, 0))
    mark = storage.write_mark()
    await storage.end_session(session_id, 1_700_000_100.0, 0.001, 0.007, "local_stop", {})
    await asyncio.wait_for(storage.wait_durable(mark), 10)
    assert len(await committed_readings(target, session_id)) == 1


async def test_wait_durable_does_not_return_while_writes_fail_and_does_after_recovery(target):
    storage = await open_storage(target, flush_interval=0.05)
    try:
        station = await storage.add_station("S", 7.0)
        user = await storage.add_user("U")
        session_id = await storage.create_session(station.id, user.id, "CARD1", 1.0, 7.0, {})
        await refuse_writes(storage, target, True)  # every write fails
        storage.queue_reading(reading(session_id, 0))
        mark = storage.write_mark()
        waiter = asyncio.create_task(storage.wait_durable(mark))
        await wait_until(lambda: storage.failed_flushes >= 3, what="three failed flushes")
        assert not waiter.done() and storage.durable_mark < mark
        assert await committed_readings(target, session_id) == []
        storage.queue_reading(reading(session_id, 1))  # queued during the outage
        await refuse_writes(storage, target, False)
        await asyncio.wait_for(waiter, 10)
        assert len(await committed_readings(target, session_id)) >= 1
        await asyncio.wait_for(storage.wait_durable(storage.write_mark()), 10)
        assert len(await committed_readings(target, session_id)) == 2
    finally:
        await storage.close()


async def test_a_cancelled_waiter_does_not_disturb_the_others(storage, session_id):
    storage.queue_reading(reading(session_id, 0))
    mark = storage.write_mark()
    first = asyncio.create_task(storage.wait_durable(mark))
    second = asyncio.create_task(storage.wait_durable(mark))
    await asyncio.sleep(0)
    first.cancel()
    await storage.flush()
    await asyncio.wait_for(second, 10)
    assert first.cancelled()

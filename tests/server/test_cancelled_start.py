"""A card tap whose handling is cancelled while the database commits its session (the task of
the charger's connection cancelled mid-tap, as a shutdown that cancels what is left does) on
both storage backends: the session the database stored is ended at once as
`start_interrupted` (its `start` never reached the charger, whose relay stayed open), nothing
stays open, and the station takes the next tap instead of answering STATION_BUSY forever.

The database's own lock holds the commit in flight: another connection holds a write lock
(SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE sessions`), as a backup or an admin command
may, and lets go right after the cancellation."""

import asyncio
import sqlite3

import asyncpg

from server.core import START_INTERRUPTED
from tests.live_server import (
    base_url,
    publisher,
    receive_type,
    running_server,
    send_json,
    server_storage,
)

CARD = "VIRTUAL-1-A4F2E8"  # the demo database's card
WAIT = 15.0  # generous: only a failing test waits this long


class WriteLock:
    """Another client of the database holding its write lock until `release()`."""

    def __init__(self, target):
        self.target = target

    async def take(self) -> None:
        if isinstance(self.target, str):  # PostgreSQL
            self.conn = await asyncpg.connect(self.target)
            self.transaction = self.conn.transaction()
            await self.transaction.start()
            await self.conn.execute("LOCK TABLE sessions IN EXCLUSIVE MODE")
        else:
            self.conn = sqlite3.connect(self.target, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")

    async def release(self) -> None:
        if isinstance(self.target, str):
            await self.transaction.rollback()
            await self.conn.close()
        else:
            self.conn.execute("ROLLBACK")
            self.conn.close()


async def until(condition, what: str):
    try:
        async with asyncio.timeout(WAIT):
            while not await condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_tap_cancelled_while_its_session_commits_leaves_no_session_open(target, tmp_path):
    db_path, overrides = server_storage(target, tmp_path)
    async with running_server(db_path, **overrides) as app:
        charger = await publisher(base_url(app))
        [handling] = app.server.handler_tasks  # the charger's connection: the only one
        lock = WriteLock(target)
        await lock.take()
        try:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})

            async def starting():
                return app.core.stations[1].starting

            await until(starting, "the tap's session being created")
            await asyncio.sleep(0.2)  # the INSERT waits for the lock
            handling.cancel()
            await asyncio.gather(handling, return_exceptions=True)
        finally:
            await lock.release()
        await charger.close()

        async def settled():
            # the core hears of the stored session, then its end is written (the settle task)
            return not app.core.stations[1].starting and not app.effects.settling

        await until(settled, "the cancelled tap's outcome reaching the core and the database")
        await app.storage.flush()
        assert await app.storage.open_sessions() == []
        stored, _ = await app.storage.list_sessions(station_id=1)
        # the commit went through (SQLite's thread finishes what it started; PostgreSQL's query
        # is no longer cancelled half-way): ended at once, nothing billed
        assert [(s.end_reason, s.kwh, s.cost) for s in stored] == [(START_INTERRUPTED, 0.0, 0.0)]

        charger = await publisher(base_url(app))  # the station is not stuck `starting`
        async with charger:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            started = await receive_type(charger, "start")
        assert started["session_id"] != stored[0].id
        assert [s.id for s in await app.storage.open_sessions()] == [started["session_id"]]

"""One sqlite3 connection that lives on its own worker thread.

Every call, `await db.run(function, *args)`, runs `function(connection, *args)` on that thread:
ONE round trip to the event loop however many statements the function runs (under load every
awaited statement waits for a turn of a busy event loop). Calls run one at a time, in the order
they were made. Standard library only (sqlite3 + a one-thread executor): no private API of an
async wrapper.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteThread:
    def __init__(self, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._executor = executor
        self._conn = conn

    @classmethod
    async def connect(cls, path: Path) -> SqliteThread:
        """Autocommit mode (isolation_level=None): every transaction is an explicit BEGIN."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(
                executor,
                functools.partial(
                    sqlite3.connect, path, isolation_level=None, check_same_thread=False
                ),
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, conn)

    async def run(self, function: Callable[..., T], *args) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, self._conn, *args)
        )

    async def fetchall(self, sql: str, params=()) -> list:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def close(self) -> None:
        try:
            await self.run(sqlite3.Connection.close)
        finally:
            self._executor.shutdown(wait=True)

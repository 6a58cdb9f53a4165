"""Fixtures for the storage tests, run against both backends: a real SQLite file in tmp_path,
and a fresh database on a real throwaway PostgreSQL (one server per test
worker, one database per test). `outside()` looks at the database through a second, plain
connection (what another process would see: committed rows only).

`backend` and `target` are in tests/conftest.py: "sqlite" or "postgres"; a test about one
engine's own mechanics overrides it with `@pytest.mark.parametrize("backend", ["sqlite"])`.
"""

import asyncio
import inspect
import itertools
import re
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest

from server.storage import Reading, open_storage


@pytest.fixture
async def storage(target):
    storage = await open_storage(target)
    yield storage
    await storage.close()


@pytest.fixture
async def session_id(storage):
    """An open session on a station with a user and card."""
    station = await storage.add_station("Estación 1", 7.0, station_id=1)
    user = await storage.add_user("Juan Pérez")
    await storage.add_card("VIRTUAL-1-A4F2E8", user.id)
    return await storage.create_session(
        station.id,
        user.id,
        "VIRTUAL-1-A4F2E8",
        1_700_000_000.0,
        7.0,
        {"mode": "register", "wh0": 1000.0},
    )


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2..."""
    count = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def outside(target, sql, params=()):
    """Run a query on a separate connection: sees only committed rows. `?` placeholders."""
    if isinstance(target, Path):
        conn = sqlite3.connect(target)
        try:
            with conn:
                return [tuple(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()
    conn = await asyncpg.connect(target)
    try:
        return [tuple(row) for row in await conn.fetch(_numbered(sql), *params)]
    finally:
        await conn.close()


async def committed_readings(target, session_id):
    return await outside(
        target, "SELECT ts, kwh FROM readings WHERE session_id = ? ORDER BY ts", (session_id,)
    )


async def refuse_writes(storage, target, refuse: bool) -> None:
    """Make every write of the storage fail (refuse=True) or work again: SQLite's query_only
    on the storage's own connection, a PostgreSQL trigger raising on any write to the
    session tables (an outage the database itself reports)."""
    if isinstance(target, Path):
        await storage._fetch(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")
        return
    if refuse:
        sql = [
            "CREATE OR REPLACE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'writes refused (test outage)'; END$$"
        ]
        sql += [
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT OR UPDATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes()"
            for table in ("readings", "sessions")
        ]
    else:
        sql = [f"DROP TRIGGER refuse_{table} ON {table}" for table in ("readings", "sessions")]
    for statement in sql:
        await outside(target, statement)


def reading(session_id, i, kwh=None):
    return Reading(
        session_id,
        1_700_000_000.0 + i,
        230.0,
        16.0,
        3680.0,
        1000.0 + i,
        i / 1000 if kwh is None else kwh,
    )


async def wait_until(condition, timeout=15.0, what="condition"):
    """Poll `condition()` (a plain or async callable) until it is true; fail after `timeout`
    seconds (a generous bound for a loaded machine, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)

"""Fixtures for the storage tests: a real SQLite file in tmp_path, and an outside view of it
through a second, plain sqlite3 connection (what another process would see)."""

import asyncio
import sqlite3
import time

import pytest

from server.storage import Reading, Storage


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "evse.sqlite3"


@pytest.fixture
async def storage(db_path):
    storage = await Storage.open(db_path)
    yield storage
    await storage.close()


@pytest.fixture
async def session_id(storage):
    """An open session on a station with a user and card."""
    station = await storage.add_station("Estación 1", 7.0, station_id=1)
    user = await storage.add_user("Juan Pérez")
    await storage.add_card("VIRTUAL-1-A4F2E8", user.id)
    return await storage.create_session(station.id, user.id, "VIRTUAL-1-A4F2E8", 1_700_000_000.0,
                                        7.0, {"mode": "register", "wh0": 1000.0})


def outside(db_path, sql, params=()):
    """Run a query on a separate connection: sees only committed rows."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def committed_readings(db_path, session_id):
    return outside(db_path, "SELECT ts, kwh FROM readings WHERE session_id = ? ORDER BY ts",
                   (session_id,))


def reading(session_id, i, kwh=None):
    return Reading(session_id, 1_700_000_000.0 + i, 230.0, 16.0, 3680.0, 1000.0 + i,
                   i / 1000 if kwh is None else kwh)


async def wait_until(condition, timeout=15.0, what="condition"):
    """Poll `condition()` until it is true; fail after `timeout` seconds (a generous bound
    for a loaded machine, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)

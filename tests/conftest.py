"""Fixtures every test directory can use: a real server with a temp SQLite file and the demo,
a throwaway PostgreSQL (`postgres_server`) and nats-server (`nats_server`, both
tools/services.py) for the tests that need them: one of each per test process, started by the
first test that asks.

`server_url` -> "ws://127.0.0.1:PORT" (append "/ws?role=...&estacionId=..."),
`live_app` -> the running server.app.App (its .storage, .core, .port). See tests/live_server.py.

Both storage backends: a test taking `target` runs once per `backend` ("sqlite", "postgres");
`target` is a SQLite path or a fresh PostgreSQL database's URL (tests/live_server.py
`server_storage()` turns it into running_server's arguments).
"""

import itertools
import os

import asyncpg
import pytest

from tests.live_server import base_url, running_server
from tools import services


@pytest.fixture
async def live_app(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        yield app


@pytest.fixture
async def server_url(live_app):
    return base_url(live_app)


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL for this test process, started only if a test asks for it;
    `postgres_server.create_database(name)` gives a test its own database URL."""
    with services.postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def nats_server():
    """One throwaway nats-server for this test process, started only if a test asks for it;
    `nats_server.url`. Tests use it one after another (a test's fleet closes before the next
    starts), so their messages never meet."""
    with services.nats() as bus:
        yield bus


BACKENDS = ("sqlite", "postgres")
_database_names = itertools.count()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
async def target(backend, tmp_path, request):
    """What open_storage() opens: a SQLite file path, or the URL of a fresh PostgreSQL database
    (dropped after the test: each is a few MB on disk)."""
    if backend == "sqlite":
        yield tmp_path / "evse.sqlite3"
        return
    pg = request.getfixturevalue("postgres_server")
    name = f"t{os.getpid()}_{next(_database_names)}"
    yield pg.create_database(name)
    admin = await asyncpg.connect(pg.url)
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()

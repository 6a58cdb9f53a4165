"""Fixtures every test directory can use: a real server with a temp SQLite file and the demo,
and a throwaway PostgreSQL (`postgres_server`, tools/services.py) for the tests that need one.

`server_url` -> "ws://127.0.0.1:PORT" (append "/ws?role=...&estacionId=..."),
`live_app` -> the running server.app.App (its .storage, .core, .port). See tests/live_server.py.
"""

import pytest

from tools import services

from tests.live_server import base_url, running_server


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

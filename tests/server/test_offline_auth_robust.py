"""Offline authorization when things go wrong, on both storage backends (server/offline_auth.py,
docs/protocol.md "Offline cards"): a repeated `offline_start` whose first answer was lost, an
offline start reported to a server that restarted meanwhile, a list push the database fails."""

import asyncio
import sqlite3

import asyncpg
import pytest

from tests.live_server import (
    ServerClock,
    base_url,
    connect,
    receive_json,
    receive_type,
    running_server,
    send_json,
    server_clock,
    server_storage,
)
from tests.server.handled import handled, of_type
from tests.server.test_offline_auth import DEMO_UID, gone, keyed_charger, offline_start

DAY = 86400.0


@pytest.fixture
async def app(target, tmp_path):
    db, overrides = server_storage(target, tmp_path)
    async with running_server(db, **overrides) as running:
        yield running


async def test_a_repeated_start_of_a_disabled_card_still_says_end(app):
    ws, listed = await keyed_charger(app)
    await gone(app, ws)
    await app.storage.set_card_enabled(DEMO_UID, False)  # while the charger is away
    ws, _ = await keyed_charger(app)
    async with ws:
        first = of_type(await offline_start(ws, listed["version"]), "start")[0]
        assert first["end"] is True
        # that answer never reached the charger: it reports the same start again
        again = of_type(await offline_start(ws, listed["version"]), "start")[0]
        assert again["session_id"] == first["session_id"] and again["end"] is True
        assert again["local_id"] == first["local_id"]


async def test_a_repeated_start_of_a_closed_session_says_end(app):
    ws, listed = await keyed_charger(app)
    async with ws:
        start = of_type(await offline_start(ws, listed["version"]), "start")[0]
        assert "end" not in start  # an enabled card: charge on
        sid = start["session_id"]
        await send_json(ws, {"type": "stop", "session_id": sid, "wh": 1000})
        await handled(ws)
        assert (await app.storage.get_session(sid)).ended_at is not None
        # the charger never got the `start`: charging now would be billed to no session
        again = of_type(await offline_start(ws, listed["version"]), "start")[0]
        assert again["session_id"] == sid and again["end"] is True
        assert await app.storage.open_sessions() == []


async def test_an_offline_start_after_a_server_restart_is_bounded_by_the_last_connection(
    target, tmp_path
):
    clock = ServerClock()
    db, overrides = server_storage(target, tmp_path)
    async with running_server(db, clock=clock, **overrides) as app:
        ws, listed = await keyed_charger(app)
        clock.advance(2 * DAY)  # connected for two days after list 1 was signed
        await gone(app, ws)
        went = clock()
    clock.advance(120)  # the server restarts while the charger is offline
    async with running_server(db, clock=clock, **overrides) as app:
        ws, again = await keyed_charger(app)
        assert again["version"] == listed["version"]  # list 1: signed two days ago
        async with ws:
            # it claims to have started a day before it went away: placed at gone - 30 s
            seen = await offline_start(ws, listed["version"], ts=int(went - DAY))
            start = of_type(seen, "start")[0]
            record = await app.storage.get_session(start["session_id"])
            assert went - 31 <= record.started_at <= went - 29


async def break_auth_lists(target) -> None:
    """Drop the signed lists' table behind the running server's back."""
    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            await conn.execute("DROP TABLE auth_lists")
        finally:
            await conn.close()
    else:
        with sqlite3.connect(target) as db:
            db.execute("DROP TABLE auth_lists")


async def test_a_failing_list_push_leaves_the_charger_connected(app, target):
    await break_auth_lists(target)
    ws = await connect(base_url(app), "publisher", 1, token=app.demo_key)
    async with ws:
        assert (await receive_json(ws))["type"] == "connected"
        await send_json(ws, {"type": "nfc_scan", "nfc_uid": DEMO_UID})
        start = await receive_type(ws, "start")
        t0 = int(server_clock(base_url(app))()) - 20
        for i in range(3):
            await send_json(
                ws,
                {
                    "type": "metrics",
                    "session_id": start["session_id"],
                    "v": 230,
                    "a": 10,
                    "w": 2300,
                    "wh": 500 + 5 * i,
                    "ts": t0 + 5 * i,
                },
            )
        await handled(ws)
        async with asyncio.timeout(10):
            while len(await app.storage.readings(start["session_id"])) < 3:
                await asyncio.sleep(0.02)
        assert app.hub.has_publisher(1)

"""Faults a user would notice, end to end: the server SIGKILLed mid-session, a read-only
database, a charger clock far off. (A vanished charger: test_reconciliation.py; a locked
database and a full disk: tests/storage/test_batching.py and test_sessions.py.)"""

import asyncio
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.live_server import (
    base_url,
    connect,
    publisher,
    receive_json,
    receive_type,
    running_server,
    send_json,
    server_storage,
    tokens_for_db,
)
from tests.storage.conftest import outside, wait_until

ROOT = Path(__file__).resolve().parents[2]
CARD = "VIRTUAL-1-A4F2E8"
WAIT_S = 30


async def start_server_process(db: Path, database_url: str | None = None):
    """`python -m server --demo` on a free port (on PostgreSQL with a database_url; the secret
    file stays next to `db`); returns (process, ws base url)."""
    on_postgres = ["--database-url", database_url] if database_url else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db),
        "--demo",
        *on_postgres,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    line = (await asyncio.wait_for(process.stdout.readline(), WAIT_S)).decode()
    port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
    return process, f"ws://127.0.0.1:{port}"


def stored(db: Path, sql: str, params=()):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as database:
        return database.execute(sql, params).fetchall()


async def charger_of(db: Path, url: str):
    websocket = await ws_connect(
        f"{url}/ws?role=publisher&estacionId=1&token={tokens_for_db(db, 'publisher', 1)}"
    )
    assert (await receive_json(websocket))["type"] == "connected"
    return websocket


async def test_sigkilled_server_keeps_persisted_readings_resumes_the_session_and_bills_the_meter_delta(
    target, tmp_path
):
    # a live charger: whole-second NTP stamps, the register rising a few Wh per reading (the
    # server bills no more than 22 kW over the time its own clock saw, docs/protocol.md)
    db, overrides = server_storage(target, tmp_path)
    database_url = overrides.get("database_url")

    async def committed(sql, params=()):  # what a separate connection sees
        return await outside(target, sql, params)

    server, url = await start_server_process(db, database_url)
    try:
        charger = await charger_of(db, url)
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        session_id = (await receive_type(charger, "start"))["session_id"]
        before_kill = []
        for wh in [1000, 1002, 1004]:
            ts = float(int(time.time()))
            await send_json(
                charger,
                {
                    "type": "metrics",
                    "session_id": session_id,
                    "v": 230,
                    "a": 13,
                    "w": 3000,
                    "ts": ts,
                    "wh": wh,
                },
            )
            before_kill.append((ts, float(wh)))
        query = "SELECT charger_ts, wh FROM readings WHERE session_id = ? ORDER BY id"

        async def flushed():
            return await committed(query, (session_id,)) == before_kill

        await wait_until(flushed, WAIT_S, what="the readings to be flushed (every 0.25 s)")
        server.send_signal(signal.SIGKILL)
        await server.wait()
        await charger.wait_closed()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    server, url = await start_server_process(db, database_url)
    try:
        charger = await charger_of(db, url)
        async with charger:
            await send_json(
                charger,
                {"type": "status", "state": "charging", "session_id": session_id, "wh": 1007},
            )
            await send_json(
                charger,
                {
                    "type": "metrics",
                    "session_id": session_id,
                    "v": 230,
                    "a": 13,
                    "w": 3000,
                    "ts": int(time.time()),
                    "wh": 1010,
                },
            )
            await send_json(
                charger,
                {"type": "stop", "session_id": session_id, "wh": 1012, "ts": int(time.time())},
            )
            await send_json(charger, {"type": "sync_check"})  # answered after the stop was handled
            await receive_type(charger, "error")
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), WAIT_S)
    assert (await committed(query, (session_id,)))[:3] == before_kill  # nothing persisted was lost
    [(kwh, cost, reason, ended_at)] = await committed(
        "SELECT kwh, cost, end_reason, ended_at FROM sessions WHERE id = ?", (session_id,)
    )
    assert ended_at is not None and reason == "local_stop"
    assert round(kwh * 1000, 6) == 1012 - 1000  # exactly the meter's delta
    assert cost == pytest.approx(0.012 * 7.0)
    if database_url is None:
        assert stored(db, "PRAGMA integrity_check") == [("ok",)]


async def test_a_read_only_database_refuses_the_tap_clearly_writes_nothing_and_the_retry_works(
    live_app, server_url
):
    await live_app.storage.flush()
    await live_app.storage._fetch(
        "PRAGMA query_only = ON"
    )  # every write now fails, as on a read-only file
    async with connect(server_url, "client", 1) as dashboard:
        await receive_type(dashboard, "init")
        charger = await publisher(server_url)
        async with charger:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            refusal = await receive_type(charger, "error")
            assert (
                refusal["code"] == "SERVER_ERROR"
                and refusal["message"] == "No se pudo crear la sesión"
            )
            assert (await live_app.storage.list_sessions())[1] == 0  # no half-written session
            assert live_app.core.open_session_count() == 0
            await live_app.storage._fetch("PRAGMA query_only = OFF")  # the disk is writable again
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})  # the person taps again
            session_id = (await receive_type(charger, "start"))["session_id"]
            assert (await receive_type(dashboard, "session_started"))["session_id"] == session_id


@pytest.mark.parametrize(
    "charger_ts", [0, 946_684_800, 4_102_444_800], ids=["unset", "year-2000", "year-2100"]
)
async def test_a_charger_clock_far_off_is_replaced_by_server_time_and_billed_by_the_meter(
    tmp_path, charger_ts
):
    now = [1_800_000_000.0]
    async with running_server(tmp_path / "db.sqlite3", clock=lambda: now[0]) as app:
        charger = await publisher(base_url(app))
        async with charger, connect(base_url(app), "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            session_id = (await receive_type(charger, "start"))["session_id"]
            for k in range(4):  # a reading every 3 s of server time, the register rising 3 Wh each
                now[0] += 3
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230,
                        "a": 16,
                        "w": 3600,
                        "ts": charger_ts + k,
                        "wh": 5000 + 3 * k,
                    },
                )
                await receive_type(dashboard, "metrics")  # handled at this server time
            now[0] += 3
            await send_json(
                charger,
                {"type": "stop", "session_id": session_id, "wh": 5012, "ts": charger_ts + 9},
            )
            await send_json(charger, {"type": "sync_check"})
            await receive_type(charger, "error")
        readings = await app.storage.readings(session_id)
        # the four readings and the stop's final register (stored as the session's last row)
        assert [r.ts for r in readings] == [1_800_000_003.0 + 3 * k for k in range(5)]
        assert (readings[-1].wh, readings[-1].w) == (5012, 0.0)
        record = await app.storage.get_session(session_id)
        assert record.end_reason == "local_stop"
        assert round(record.kwh * 1000, 6) == 12  # 5012 - 5000 Wh
        assert record.cost == pytest.approx(0.012 * 7.0)


async def test_a_session_end_the_database_refused_is_stored_once_the_disk_is_writable_again(
    tmp_path,
):
    """The charger's STOP arrives while the database refuses writes: the dashboards are told at
    once, and the session's row is closed (reason, kWh) as soon as the disk takes writes again,
    without the charger having to send anything more. Before, the row stayed open until a
    restart ended it as charger_reset."""
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        async with (
            connect(base_url(app), "client", 1) as dashboard,
            connect(base_url(app), "publisher", 1) as charger,
        ):
            await receive_type(dashboard, "init")
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            session_id = (await receive_type(charger, "start"))["session_id"]
            now = time.time()
            await send_json(
                charger,
                {
                    "type": "metrics",
                    "session_id": session_id,
                    "v": 230.0,
                    "a": 10.0,
                    "w": 2300.0,
                    "wh": 5000,
                    "ts": now,
                },
            )
            await receive_type(dashboard, "metrics")
            await app.storage._fetch("PRAGMA query_only = ON")  # every write now fails
            await send_json(
                charger, {"type": "stop", "session_id": session_id, "wh": 5001, "ts": now}
            )
            ended = await receive_type(dashboard, "session_ended")  # told at once
            assert ended["kwh"] == 0.001
            await wait_until(lambda: app.handler.retries, what="the refused end to be retried")
            assert stored(db, "SELECT ended_at FROM sessions WHERE id = ?", (session_id,)) == [
                (None,)
            ]
            await app.storage._fetch("PRAGMA query_only = OFF")  # the disk is writable again
            await wait_until(
                lambda: not app.handler.retries, what="the end to be stored", timeout=WAIT_S
            )
    [(reason, kwh, ended_at)] = stored(
        db, "SELECT end_reason, kwh, ended_at FROM sessions WHERE id = ?", (session_id,)
    )
    assert (reason, round(kwh, 3)) == ("local_stop", 0.001) and ended_at is not None

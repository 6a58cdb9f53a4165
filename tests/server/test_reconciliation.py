"""The charger is the physical truth: reboots, server restarts and vanished chargers."""

import asyncio
import time

import pytest

from tests.live_server import (
    base_url,
    connect,
    publisher,
    receive_json,
    receive_type,
    running_server,
    send_json,
    token_for,
)

CARD = "VIRTUAL-1-A4F2E8"


async def start_charging(charger):
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
    return (await receive_type(charger, "start"))["session_id"]


async def test_charger_rebooted_mid_session_reports_idle_and_session_ends_as_charger_reset(
    live_app, server_url
):
    charger = await publisher(server_url)
    async with charger:
        session_id = await start_charging(charger)
    async with connect(server_url, "client", 1) as dashboard:
        init = await receive_type(dashboard, "init")
        assert init["charger"]["status"] == "desconectado"
        assert init["charger"]["session"]["session_id"] == session_id  # still open while away
        rebooted = await publisher(server_url)
        async with rebooted:
            await send_json(rebooted, {"type": "status", "state": "idle", "session_id": None})
            ended = await receive_type(dashboard, "session_ended")
            assert ended["session_id"] == session_id
            assert (await receive_json(dashboard))["status"] == "disponible"
    assert (await live_app.storage.get_session(session_id)).end_reason == "charger_reset"


async def test_charger_charging_a_session_the_server_does_not_have_open_is_told_to_stop(server_url):
    charger = await publisher(server_url)
    async with charger:
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "stop", "session_id": session_id})
        await send_json(charger, {"type": "status", "state": "charging", "session_id": session_id})
        assert await receive_json(charger) == {"type": "stop", "session_id": session_id}


async def test_server_restart_mid_session_resumes_the_same_session_with_no_energy_lost(tmp_path):
    db = tmp_path / "evse.sqlite3"
    t0 = time.time() - 1800
    now = [t0]  # the servers' clock, stepped by the test (billed time is bounded by it)
    async with running_server(db, clock=lambda: now[0]) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = await start_charging(charger)
            for k, wh in enumerate([1000, 1250, 1500]):
                now[0] = t0 + 300 * k
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230,
                        "a": 13,
                        "w": 3000,
                        "ts": t0 + 300 * k,
                        "wh": wh,
                    },
                )
                await send_json(charger, {"type": "sync_check"})  # a reply proves it was handled
                await receive_type(charger, "error")
    now[0] = t0 + 1200
    async with running_server(db, clock=lambda: now[0]) as app:
        url = base_url(app)
        async with connect(url, "client", 1) as dashboard:
            init = await receive_type(dashboard, "init")
            assert init["charger"]["session"]["session_id"] == session_id
            assert init["charger"]["session"]["kwh"] == 0.5
            charger = await publisher(url)
            async with charger:
                await send_json(
                    charger,
                    {"type": "status", "state": "charging", "session_id": session_id, "wh": 1700},
                )
                # energy used while the server was down is in the register delta
                now[0] = t0 + 1500
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230,
                        "a": 13,
                        "w": 3000,
                        "ts": t0 + 1500,
                        "wh": 2500,
                    },
                )
                pushed = await receive_type(dashboard, "metrics")
                assert pushed["session_id"] == session_id
                assert pushed["kwh"] == 1.5 and pushed["cost"] == 10.5
                await send_json(charger, {"type": "stop", "session_id": session_id})
                await receive_type(dashboard, "session_ended")
        record = await app.storage.get_session(session_id)
        assert record.end_reason == "local_stop" and record.kwh == pytest.approx(1.5)


async def _silent_publisher(port: int):
    """A charger that completes the handshake and then never answers (power cut, WiFi gone)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    token = token_for(f"ws://127.0.0.1:{port}", "publisher", 1).encode()
    writer.write(
        b"GET /ws?role=publisher&estacionId=1&token=" + token + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    assert b" 101 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return writer


async def test_vanished_charger_is_shown_desconectado_and_keeps_its_session(tmp_path):
    async with running_server(tmp_path / "db.sqlite3", ping_interval=0.5, ping_timeout=3.0) as app:
        url = base_url(app)
        charger = await publisher(url)
        async with charger:
            session_id = await start_charging(charger)
        async with connect(url, "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            writer = await _silent_publisher(app.port)
            try:
                # it reconnects while its session is open: cargando until it answers no more
                assert (await receive_type(dashboard, "status"))["status"] == "cargando"
                assert (await receive_type(dashboard, "status", timeout=30))[
                    "status"
                ] == "desconectado"
            finally:
                writer.close()
        assert (await app.storage.get_session(session_id)).ended_at is None

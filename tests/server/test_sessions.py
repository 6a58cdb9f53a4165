"""Charging sessions end to end: real server, real websockets clients, real SQLite file."""

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
)
from tests.server.handled import handled, of_type

CARD = "VIRTUAL-1-A4F2E8"


async def dashboard_for(server_url, station="1"):
    websocket = await connect(server_url, "client", station)
    await receive_type(websocket, "init")
    return websocket


async def start_charging(charger, card=CARD):
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": card})
    start = await receive_json(charger)
    assert start["type"] == "start"
    return start["session_id"]


async def test_seed_nfc_flow_step_by_step(tmp_path):
    # the server's clock is stepped by the test: the seed's 2.45 kWh take 2,469 s of server time
    # at 3572.1 W (billed time is bounded by the server's clock, docs/protocol.md)
    now = [time.time()]
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as live_app:
        await _seed_nfc_flow(live_app, base_url(live_app), now)


async def _seed_nfc_flow(live_app, server_url, now):
    dashboard = await dashboard_for(server_url)
    charger = await publisher(server_url)
    async with dashboard, charger:
        assert await receive_json(dashboard) == {
            "type": "status",
            "charger_id": 1,
            "status": "disponible",
        }
        # 1. the charger reads the card (written as a phone NFC app shows it: lower case)
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "virtual-1-a4f2e8"})
        # 2. the backend creates the session and answers start
        start = await receive_json(charger)
        assert set(start) == {"type", "session_id", "user_name"}
        assert start["type"] == "start" and start["user_name"] == "Juan Pérez"
        session_id = start["session_id"]
        started = await receive_json(dashboard)
        assert started["type"] == "session_started" and started["session_id"] == session_id
        assert started["charger_id"] == 1 and started["user_name"] == "Juan Pérez"
        assert started["timestamp"].endswith("Z") and len(started["timestamp"]) == 24
        assert await receive_json(dashboard) == {
            "type": "status",
            "charger_id": 1,
            "status": "cargando",
        }
        # 3./4. metrics are priced and pushed with the seed's fields
        start_ts = now[0]
        await send_json(
            charger,
            {
                "type": "metrics",
                "session_id": session_id,
                "v": 220.5,
                "a": 16.2,
                "w": 3572.1,
                "ts": start_ts,
                "wh": 10_000,
            },
        )
        await receive_type(dashboard, "metrics")
        now[0] += 2469
        await send_json(
            charger,
            {
                "type": "metrics",
                "session_id": session_id,
                "v": 220.5,
                "a": 16.2,
                "w": 3572.1,
                "ts": start_ts + 2469,
                "wh": 12_450,
            },
        )
        pushed = await receive_json(dashboard)
        assert {
            k: pushed[k] for k in ("type", "session_id", "charger_id", "v", "a", "w", "kwh", "cost")
        } == {
            "type": "metrics",
            "session_id": session_id,
            "charger_id": 1,
            "v": 220.5,
            "a": 16.2,
            "w": 3572.1,
            "kwh": 2.45,
            "cost": 17.15,
        }
        assert pushed["time"] == 2469
        # 5. STOP on the charger ends the session and dashboards get the summary
        await send_json(charger, {"type": "stop", "session_id": session_id})
        ended = await receive_json(dashboard)
        assert ended["type"] == "session_ended" and ended["kwh"] == 2.45 and ended["cost"] == 17.15
        assert ended["duration"] == 2469
        assert (await receive_json(dashboard))["status"] == "disponible"
    record = await live_app.storage.get_session(session_id)
    assert record.end_reason == "local_stop" and record.kwh == pytest.approx(2.45)
    assert record.cost == pytest.approx(17.15) and record.tariff == 7.0
    assert [r.wh for r in await live_app.storage.readings(session_id)] == [10_000, 12_450]


async def test_charger_stop_is_idempotent(live_app, server_url):
    charger = await publisher(server_url)
    async with charger:
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "stop", "session_id": session_id})
        await send_json(charger, {"type": "stop", "session_id": session_id})
        # the station is free again: a new tap starts a NEW session, no error came in between
        assert await start_charging(charger) != session_id
    assert (await live_app.storage.get_session(session_id)).end_reason == "local_stop"


async def test_unknown_card_answers_the_charger_and_dashboards_see_the_rejected_tap(
    live_app, server_url
):
    card, code = "04:DE:AD:BE:EF", "CARD_UNKNOWN"
    dashboard = await dashboard_for(server_url)
    charger = await publisher(server_url)
    async with dashboard, charger:
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": card})
        answer = await receive_json(charger)
        assert answer["type"] == "error" and answer["code"] == code and answer["message"]
        seen = await receive_type(dashboard, "error")
        assert seen["code"] == code and seen["charger_id"] == 1 and seen["nfc_uid"] == "04DEADBEEF"
    assert (await live_app.storage.list_sessions())[1] == 0


async def test_disabled_card_and_busy_station_are_refused(live_app, server_url):
    user = await live_app.storage.add_user("Ana")
    await live_app.storage.add_card("04A1B2C3", user.id)
    await live_app.storage.add_card("04FFFFFF", user.id)
    await live_app.storage.set_card_enabled("04FFFFFF", False)
    charger = await publisher(server_url)
    async with charger:
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04FFFFFF"})
        assert (await receive_json(charger))["code"] == "CARD_DISABLED"
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04A1B2C3"})
        assert (await receive_json(charger))["code"] == "STATION_BUSY"
        # the owner's card tapped again at once does not stop a session this young (a repeat of
        # the tap that started it, or SESSION_TOO_RECENT: tests/server/test_taps_and_attribution.py)
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        assert of_type(await handled(charger), "stop") == []
    assert (await live_app.storage.get_session(session_id)).ended_at is None


async def test_dashboard_stop_with_charger_online_stops_charger_and_ends_session(
    live_app, server_url
):
    charger = await publisher(server_url)
    async with charger:
        session_id = await start_charging(charger)
        dashboard = await dashboard_for(server_url)
        async with dashboard:
            assert (await receive_json(charger))["type"] == "sync_request"
            await send_json(dashboard, {"type": "stop", "session_id": session_id})
            assert await receive_json(charger) == {"type": "stop", "session_id": session_id}
            ended = await receive_json(dashboard)
            assert ended["type"] == "session_ended" and ended["session_id"] == session_id
    assert (await live_app.storage.get_session(session_id)).end_reason == "remote_stop"


async def test_dashboard_stop_with_charger_offline_answers_esp32_no_conectado(live_app, server_url):
    charger = await publisher(server_url)
    async with charger:
        session_id = await start_charging(charger)
    dashboard = await dashboard_for(server_url)
    async with dashboard:
        await send_json(dashboard, {"type": "stop", "session_id": session_id})
        assert await receive_json(dashboard) == {
            "type": "error",
            "message": "ESP32 no conectado",
            "code": "CHARGER_OFFLINE",
        }
    assert (await live_app.storage.get_session(session_id)).ended_at is None


async def test_emergency_ends_session_alerts_and_blocks_until_charger_reports_reset(
    live_app, server_url
):
    dashboard = await dashboard_for(server_url)
    charger = await publisher(server_url)
    async with dashboard, charger:
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "emergency", "session_id": session_id})
        alert = await receive_type(dashboard, "emergency")
        assert alert["charger_id"] == 1 and alert["session_id"] == session_id
        assert alert["timestamp"].endswith("Z")
        assert (await receive_json(dashboard))["type"] == "session_ended"
        assert await receive_json(dashboard) == {
            "type": "status",
            "charger_id": 1,
            "status": "emergencia",
        }
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        assert (await receive_json(charger))["code"] == "STATION_FAULT"
        await send_json(charger, {"type": "status", "state": "idle", "session_id": None})
        assert (await receive_type(dashboard, "status"))["status"] == "disponible"
    assert (await live_app.storage.get_session(session_id)).end_reason == "emergency"
    [stored] = await live_app.storage.list_alerts(station_id=1)
    assert stored.kind == "emergency" and stored.session_id == session_id


@pytest.mark.parametrize("reason", ["meter_failure", "offline_limit"])
async def test_a_charger_stopping_for_its_own_fault_alerts_dashboards_and_stores_the_alert(
    live_app, server_url, reason
):
    dashboard = await dashboard_for(server_url)
    charger = await publisher(server_url)
    async with dashboard, charger:
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "stop", "session_id": session_id, "reason": reason})
        alert = await receive_type(dashboard, "alert")
        assert (alert["charger_id"], alert["session_id"], alert["kind"]) == (1, session_id, reason)
        assert alert["message"] and alert["timestamp"].endswith("Z")
        ended = await receive_type(dashboard, "session_ended")
        assert ended["session_id"] == session_id and ended["reason"] == "local_stop"
        assert (await receive_type(dashboard, "status"))["status"] == "disponible"
        # the same stop replayed after a reconnect is harmless: no second alert
        await send_json(charger, {"type": "stop", "session_id": session_id, "reason": reason})
        assert (await start_charging(charger)) != session_id  # the station takes the next card
    assert (await live_app.storage.get_session(session_id)).end_reason == "local_stop"
    [stored] = await live_app.storage.list_alerts(station_id=1)
    assert (stored.kind, stored.session_id, stored.detail) == (reason, session_id, alert["message"])


async def test_emergency_reaches_dashboards_even_when_the_alert_cannot_be_written(
    live_app, server_url, monkeypatch
):
    import sqlite3

    async def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(live_app.storage, "add_alert", disk_full)
    dashboard = await dashboard_for(server_url)
    charger = await publisher(server_url)
    async with dashboard, charger:
        session_id = await start_charging(charger)
        await send_json(charger, {"type": "emergency", "session_id": session_id})
        assert (await receive_type(dashboard, "emergency"))["session_id"] == session_id
        assert (await receive_type(dashboard, "status"))["status"] == "emergencia"
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        assert (await receive_json(charger))["code"] == "STATION_FAULT"  # connection still served
    assert (await live_app.storage.get_session(session_id)).end_reason == "emergency"

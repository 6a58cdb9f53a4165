"""End to end: the real firmware on the MicroPython unix port (emulated RC522, PZEM-004T,
relay and buttons) against the real server on an ephemeral port with a real SQLite file."""

import asyncio

import pytest

from server.app import App
from server.config import Config
from tests.firmware.mpy import requires_micropython
from tests.live_server import base_url, connect, receive_type, send_json, token_for
from tests.server.bills import metered
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(180)]

CARD = "04A1B2C3D4E5F6"  # a 7-byte UID: read through cascade level 2


async def _register_card(app):
    user = (await app.storage.list_users())[0]
    await app.storage.add_card(CARD, user.id)
    return user


@pytest.fixture
async def charger(live_app, tmp_path):
    await _register_card(live_app)
    sim = SimCharger(
        tmp_path, base_url(live_app) + "/ws", token=token_for(base_url(live_app), "publisher", 1)
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def _start_session(sim, dashboard=None):
    await sim.wait_status(lambda s: s["link"])
    await sim.command("tap " + CARD)
    st = await sim.wait_status(lambda s: s["state"] == "charging")
    assert st["relay"] is True
    if dashboard is not None:
        started = await receive_type(dashboard, "session_started")
        assert started["session_id"] == st["session_id"]
    return st["session_id"]


async def _wait_ended(app, session_id):
    for _ in range(400):
        record = await app.storage.get_session(session_id)
        if record.ended_at is not None:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError("session %s never ended" % session_id)


async def _stop_and_check_energy(sim, app, session_id, wh_before):
    await sim.command("press stop")
    st = await sim.wait_status(lambda s: s["state"] == "idle")
    assert st["relay"] is False
    await sim.wait_status(lambda s: s["outbox"] == 0)
    record = await _wait_ended(app, session_id)
    assert record.end_reason == "local_stop"
    assert await app.storage.list_alerts(station_id=1) == []  # the STOP button is no fault
    meter_delta_wh = st["wh"] - wh_before
    assert meter_delta_wh > 0
    assert round(record.kwh * 1000) == meter_delta_wh
    return record


async def test_tap_charges_metrics_reach_the_dashboard_and_stop_button_bills_the_meter(
    charger, live_app
):
    async with connect(base_url(live_app), "client", 1) as dashboard:
        wh_before = (await charger.status())["wh"]
        session_id = await _start_session(charger, dashboard)
        metrics = await receive_type(dashboard, "metrics")  # the baseline, relay still open
        assert metrics["session_id"] == session_id and metrics["w"] == 0.0
        metrics = await receive_type(dashboard, "metrics")
        assert metrics["session_id"] == session_id and metrics["w"] == 2000.0
        assert metrics["v"] == 230.0 and "kwh" in metrics and "cost" in metrics
        await _stop_and_check_energy(charger, live_app, session_id, wh_before)
        ended = await receive_type(dashboard, "session_ended")
        assert ended["session_id"] == session_id


async def test_remote_stop_from_the_dashboard_opens_the_relay(charger, live_app):
    async with connect(base_url(live_app), "client", 1) as dashboard:
        session_id = await _start_session(charger, dashboard)
        await send_json(dashboard, {"type": "stop", "session_id": session_id})
        st = await charger.wait_status(lambda s: s["state"] == "idle")
        assert st["relay"] is False
        assert (await receive_type(dashboard, "session_ended"))["session_id"] == session_id
    assert (await live_app.storage.get_session(session_id)).end_reason == "remote_stop"


async def test_emergency_opens_the_relay_before_the_message_and_needs_the_local_reset(
    charger, live_app
):
    async with connect(base_url(live_app), "client", 1) as dashboard:
        session_id = await _start_session(charger, dashboard)
        answer = await charger.command("press emergency")
        assert answer.endswith("relay=0")  # off in the interrupt, before any task ran
        alert = await receive_type(dashboard, "emergency")
        assert alert["session_id"] == session_id
        st = await charger.wait_status(lambda s: s["state"] == "fault")
        assert st["relay"] is False
        await charger.command("tap " + CARD)  # cards are ignored in fault
        await charger.command("release emergency")
        await charger.command("press stop")  # the reset gesture: hold STOP 5 s
        await charger.wait_status(lambda s: s["state"] == "idle", timeout=30)
        status = await receive_type(dashboard, "status")
        while status.get("status") != "disponible":
            status = await receive_type(dashboard, "status")
    record = await live_app.storage.get_session(session_id)
    assert record.end_reason == "emergency"


async def test_link_drop_queues_readings_and_replays_them_in_order(charger, live_app):
    wh_before = (await charger.status())["wh"]
    session_id = await _start_session(charger)
    await charger.command("link down")
    await charger.wait_status(lambda s: not s["link"])
    await charger.wait_status(lambda s: s["outbox"] >= 21, timeout=60)
    await charger.command("link up")
    st = await charger.wait_status(lambda s: s["link"] and s["outbox"] == 0)
    assert st["state"] == "charging" and st["dropped"] == 0
    record = await _stop_and_check_energy(charger, live_app, session_id, wh_before)
    final = await charger.status()
    readings = metered(await live_app.storage.readings(session_id), record)  # not the stop's
    assert len(readings) == final["readings_queued"]  # nothing lost, nothing doubled
    stamps = [r.ts for r in readings]
    assert stamps == sorted(stamps)
    assert record.kwh > 0


async def _server(db, port=0):
    config = Config(
        host="127.0.0.1", port=port, db_path=db, demo=True, ping_interval=5.0, ping_timeout=5.0
    )
    return await App.start(config)


async def test_server_restart_mid_session_resumes_the_same_session_without_losing_readings(
    tmp_path,
):
    db = tmp_path / "evse.sqlite3"
    app = await _server(db)
    sim = None
    try:
        await _register_card(app)
        port = app.port
        sim = SimCharger(
            tmp_path, base_url(app) + "/ws", token=app.demo_key
        )  # kept across restarts
        await sim.start()
        wh_before = (await sim.status())["wh"]
        session_id = await _start_session(sim)
        await sim.wait_status(lambda s: s["readings_queued"] >= 3)
        await app.stop()  # the server goes away mid-session
        app = None
        # the charger keeps charging and queues its readings
        await sim.wait_status(lambda s: not s["link"] and s["outbox"] >= 3)
        app = await _server(db, port)  # back on the same address
        st = await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0)
        assert st["state"] == "charging" and st["session_id"] == session_id
        record = await _stop_and_check_energy(sim, app, session_id, wh_before)
        final = await sim.status()
        readings = metered(await app.storage.readings(session_id), record)  # not the stop's
        assert len(readings) == final["readings_queued"]
    finally:
        if sim is not None:
            await sim.stop()
        if app is not None:
            await app.stop()


async def test_charger_rebooted_mid_session_is_closed_as_charger_reset(charger, live_app):
    session_id = await _start_session(charger)
    charger.proc.stdin.write(b"reboot\n")  # machine.reset(): no answer, the process ends
    await charger.proc.stdin.drain()
    assert await charger.wait_exit() == 3
    await charger.stop()
    await charger.start()  # same meter (energy register kept), fresh firmware
    await charger.wait_status(lambda s: s["link"] and s["state"] == "idle")
    assert (await _wait_ended(live_app, session_id)).end_reason == "charger_reset"


async def test_meter_silent_for_5_s_while_charging_opens_the_relay_ends_the_session_and_alerts_the_operator(
    charger, live_app
):
    async with connect(base_url(live_app), "client", 1) as dashboard:
        session_id = await _start_session(charger, dashboard)
        await charger.command("meter silent")
        st = await charger.wait_status(lambda s: s["state"] == "idle", timeout=30)
        assert st["relay"] is False and st["led"] == 7  # the meter-failure pattern
        await charger.wait_line(lambda line: "meter_failure" in line)
        alert = await receive_type(dashboard, "alert")  # live, no page reload
        assert (alert["kind"], alert["session_id"]) == ("meter_failure", session_id)
    record = await _wait_ended(live_app, session_id)
    assert record.end_reason == "local_stop"
    [stored] = await live_app.storage.list_alerts(station_id=1)
    assert (stored.kind, stored.session_id) == ("meter_failure", session_id)


async def test_corrupt_meter_frames_count_as_a_silent_meter(charger, live_app):
    session_id = await _start_session(charger)
    await charger.command("meter corrupt")
    st = await charger.wait_status(lambda s: s["state"] == "idle", timeout=30)
    assert st["relay"] is False
    assert (await _wait_ended(live_app, session_id)).end_reason == "local_stop"
    assert [a.kind for a in await live_app.storage.list_alerts(station_id=1)] == ["meter_failure"]


async def test_offline_too_long_stops_charging_locally_and_reports_the_stop_later(
    live_app, tmp_path
):
    await _register_card(live_app)
    sim = SimCharger(
        tmp_path,
        base_url(live_app) + "/ws",
        token=token_for(base_url(live_app), "publisher", 1),
        offline_limit_s=3,
    )
    await sim.start()
    try:
        wh_before = (await sim.status())["wh"]
        session_id = await _start_session(sim)
        await sim.command("link down")
        st = await sim.wait_status(lambda s: s["state"] == "idle", timeout=30)
        assert st["relay"] is False and not st["link"]
        await sim.command("link up")
        await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0)
        record = await _wait_ended(live_app, session_id)
        assert record.end_reason == "local_stop"
        assert round(record.kwh * 1000) == st["wh"] - wh_before
        # the reason travelled through the outbox and the replay: the operator is told
        [stored] = await live_app.storage.list_alerts(station_id=1)
        assert (stored.kind, stored.session_id) == ("offline_limit", session_id)
    finally:
        await sim.stop()


async def test_absent_nfc_reader_is_a_visible_fault_not_a_crash(live_app, tmp_path):
    sim = SimCharger(
        tmp_path, base_url(live_app) + "/ws", token=token_for(base_url(live_app), "publisher", 1)
    )
    sim.extra_args = ["--absent-reader"]
    await sim.start()
    try:
        await sim.wait_line(lambda line: "NFC reader not found" in line)
        st = await sim.wait_status(lambda s: s["link"])
        assert st["led"] == 6 and st["state"] == "idle" and st["relay"] is False
    finally:
        await sim.stop()


async def test_unknown_card_is_refused_and_the_relay_stays_off(charger, live_app):
    await charger.wait_status(lambda s: s["link"])
    await charger.command("tap DEADBEEF")
    await charger.wait_line(lambda line: "server error" in line and "CARD_UNKNOWN" in line)
    st = await charger.wait_status(lambda s: s["state"] == "idle")
    assert st["relay"] is False and st["led"] == 3  # the error pattern


async def test_emergency_while_offline_reaches_the_server_with_its_readings(charger, live_app):
    session_id = await _start_session(charger)
    await charger.command("link down")
    await charger.wait_status(lambda s: not s["link"] and s["outbox"] >= 2)
    answer = await charger.command("press emergency")
    assert answer.endswith("relay=0")
    await charger.wait_status(lambda s: s["state"] == "fault")
    queued = (await charger.status())["readings_queued"]
    await charger.command("link up")
    await charger.wait_status(lambda s: s["link"] and s["outbox"] == 0)
    record = await _wait_ended(live_app, session_id)
    assert record.end_reason == "emergency"
    assert len(await live_app.storage.readings(session_id)) == queued
    st = await charger.status()
    assert st["state"] == "fault" and st["relay"] is False

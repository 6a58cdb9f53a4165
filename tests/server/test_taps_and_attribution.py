"""Card taps, session attribution and the emergency latch (issue 10): a real server on an
ephemeral port, real websockets clients as chargers and dashboards, a real SQLite file.

Time-dependent rules (tap debounce, minimum age for tap-again-to-stop) run on a fake server
clock that the test moves, so nothing here waits for or asserts a duration."""

import json
import logging

import pytest

from tests.live_server import base_url, connect, publisher, receive_type, running_server, send_json
from tests.server.handled import drain, handled, of_type

CARD = "VIRTUAL-1-A4F2E8"  # the demo card of "Juan Pérez" (station 1)
ANA_CARD = "04A32B1C"
T0 = 1_800_000_000.0


async def add_station_2_with_ana(app) -> None:
    await app.storage.add_station("Estación 2", 7.0, station_id=2)
    ana = await app.storage.add_user("Ana")
    await app.storage.add_card(ANA_CARD, ana.id)


async def tap(charger, card=CARD) -> list[dict]:
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": card})
    return await handled(charger)


# --- 5. a burst of taps -------------------------------------------------------------------------
async def test_a_thousand_taps_of_a_valid_card_in_a_second_make_one_session_and_one_start(
    tmp_path, caplog
):
    """Issue 10, case 5: before, 1,000 taps made hundreds of sessions (every second tap stopped
    the one before: a `start` to the relay each time). A burst of repeated taps is one tap."""
    caplog.set_level(logging.INFO, logger="server.core")
    db = tmp_path / "evse.sqlite3"
    # the rate limit would only slow the burst down; lift it so every tap reaches the rules
    async with running_server(db, rate_limit=1e6, rate_burst=10_000) as app:
        url = base_url(app)
        async with connect(url, "client", "all") as dashboard:
            await receive_type(dashboard, "init")
            charger = await publisher(url)
            async with charger:
                frame = json.dumps({"type": "nfc_scan", "nfc_uid": CARD})
                for _ in range(1000):
                    await charger.send(frame)
                answers = await handled(charger)
                pushed = await drain(dashboard)
        sessions, total = await app.storage.list_sessions(limit=1000)
    assert len(of_type(answers, "start")) == 1
    assert of_type(answers, "stop") == [] and of_type(answers, "error") == []
    assert total == 1 and sessions[0].ended_at is None  # charging, as the person asked
    assert len(of_type(pushed, "session_started")) == 1
    assert of_type(pushed, "session_ended") == [] and of_type(pushed, "error") == []
    assert sum("tapped again within 2 s" in line for line in caplog.messages) == 1  # logged once


async def test_tap_again_stops_only_a_session_older_than_the_minimum_age(tmp_path):
    now = [T0]
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as app:
        charger = await publisher(base_url(app))
        async with charger:
            [start] = await tap(charger)
            assert start["type"] == "start"
            now[0] += 1  # a repeat inside the debounce window: ignored, no answer at all
            assert await tap(charger) == []
            now[0] += 2.5  # past the debounce window, but the session is only 3.5 s old
            [refused] = await tap(charger)
            assert refused["code"] == "SESSION_TOO_RECENT" and "5 s" in refused["message"]
            assert app.core.stations[1].session.id == start["session_id"]
            now[0] += 2.5  # 6 s old: the same card now stops it
            assert await tap(charger) == [{"type": "stop", "session_id": start["session_id"]}]
            now[0] += 1  # the person is still holding the card: no new session
            assert await tap(charger) == []
            now[0] += 10  # a new tap later is a new session
            assert of_type(await tap(charger), "start")
        assert (await app.storage.get_session(start["session_id"])).end_reason == "card_stop"


async def test_tap_settings_come_from_the_configuration(tmp_path):
    now = [T0]
    async with running_server(
        tmp_path / "evse.sqlite3", clock=lambda: now[0], tap_debounce=0.0, card_stop_min_age=30.0
    ) as app:
        charger = await publisher(base_url(app))
        async with charger:
            [start] = await tap(charger)
            [refused] = await tap(charger)  # no debounce: answered, and 0 s < 30 s
            assert refused["code"] == "SESSION_TOO_RECENT" and "30 s" in refused["message"]
            now[0] += 30
            assert await tap(charger) == [{"type": "stop", "session_id": start["session_id"]}]


async def test_a_tap_after_a_stop_button_press_is_a_new_tap_not_a_repeat(tmp_path):
    """The debounce swallows a card held at the reader, not the next person's intention."""
    now = [T0]
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as app:
        charger = await publisher(base_url(app))
        async with charger:
            [start] = await tap(charger)
            await send_json(charger, {"type": "stop", "session_id": start["session_id"]})
            now[0] += 1
            [again] = await tap(charger)
            assert again["type"] == "start" and again["session_id"] != start["session_id"]


async def test_refused_taps_reach_dashboards_coalesced_not_one_by_one(tmp_path):
    now = [T0]
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as app:
        url = base_url(app)
        async with connect(url, "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            charger = await publisher(url)
            async with charger:
                answers = []
                for k in range(50):  # fifty different unknown cards in a burst
                    answers += await tap(charger, f"04DEAD{k:04d}")
                for _ in range(20):  # and one unknown card twenty times
                    answers += await tap(charger, "04BEEF0001")
                assert [a["code"] for a in answers] == ["CARD_UNKNOWN"] * 70  # each tap answered
                burst = of_type(await drain(dashboard), "error")
                now[0] += (
                    3  # after the window the next refusal is pushed, with how many were held back
                )
                await tap(charger, "04BEEF0002")
                later = of_type(await drain(dashboard), "error")
    assert len(burst) == 1 and burst[0]["code"] == "CARD_UNKNOWN" and burst[0]["charger_id"] == 1
    assert len(later) == 1 and later[0]["nfc_uid"] == "04BEEF0002" and later[0]["repeats"] == 69


# --- 6. attribution -----------------------------------------------------------------------------
@pytest.mark.parametrize("own_session", [False, True], ids=["station-1-idle", "station-1-charging"])
async def test_an_emergency_naming_another_stations_session_is_honoured_for_the_sender_only(
    tmp_path, own_session
):
    """Issue 10, case 6: before, the dashboards' `emergency` push named station 2's session."""
    async with running_server(tmp_path / "evse.sqlite3") as app:
        await add_station_2_with_ana(app)
        url = base_url(app)
        charger_2 = await publisher(url, 2)
        charger_1 = await publisher(url, 1)
        async with charger_1, charger_2, connect(url, "client", "all") as dashboard:
            await receive_type(dashboard, "init")
            [start_2] = of_type(await tap(charger_2, ANA_CARD), "start")
            theirs = start_2["session_id"]
            ours = of_type(await tap(charger_1), "start")[0]["session_id"] if own_session else None
            await drain(dashboard)
            await send_json(
                charger_1, {"type": "emergency", "session_id": theirs, "wh": 99_999, "ts": 1}
            )
            answers = await handled(charger_1)
            pushed = await drain(dashboard)
            assert (
                app.core.stations[2].session.id == theirs
                and app.core.stations[2].status == "cargando"
            )
        assert [a["code"] for a in of_type(answers, "error")] == ["SESSION_MISMATCH"]
        [emergency] = of_type(pushed, "emergency")
        assert (emergency["charger_id"], emergency["session_id"]) == (1, ours)
        assert {"type": "status", "charger_id": 1, "status": "emergencia"} in pushed
        assert [(e["session_id"], e["reason"]) for e in of_type(pushed, "session_ended")] == (
            [(ours, "emergency")] if own_session else []
        )
        assert not [m for m in pushed if m.get("charger_id") == 2]  # station 2 heard nothing
        [alert] = await app.storage.list_alerts()
        assert (alert.station_id, alert.session_id, alert.kind) == (1, ours, "emergency")
        assert (await app.storage.get_session(theirs)).ended_at is None
        if own_session:  # billed from its own readings, not from a frame naming another session
            assert (await app.storage.get_session(ours)).kwh == 0


async def test_a_stop_naming_another_stations_session_is_refused_and_changes_nothing(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        await add_station_2_with_ana(app)
        url = base_url(app)
        charger_2 = await publisher(url, 2)
        charger_1 = await publisher(url, 1)
        async with charger_1, charger_2:
            theirs = of_type(await tap(charger_2, ANA_CARD), "start")[0]["session_id"]
            ours = of_type(await tap(charger_1), "start")[0]["session_id"]
            await send_json(charger_1, {"type": "stop", "session_id": theirs})
            await send_json(charger_1, {"type": "stop", "session_id": 987_654})  # no such session
            answers = await handled(charger_1)
            assert [a["code"] for a in answers] == ["SESSION_MISMATCH", "SESSION_MISMATCH"]
            assert (
                app.core.stations[1].session.id == ours
                and app.core.stations[2].session.id == theirs
            )
            # its own stop, then the replay of it after a reconnect: harmless and silent
            await send_json(charger_1, {"type": "stop", "session_id": ours})
            await send_json(charger_1, {"type": "stop", "session_id": ours})
            assert await handled(charger_1) == []
        assert (await app.storage.get_session(ours)).end_reason == "local_stop"
        assert (await app.storage.get_session(theirs)).ended_at is None


async def test_a_stop_replayed_after_a_restart_is_still_recognised_as_the_stations_own(tmp_path):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            ours = of_type(await tap(charger), "start")[0]["session_id"]
            await send_json(charger, {"type": "stop", "session_id": ours})
            assert await handled(charger) == []
    async with running_server(db) as app:
        await add_station_2_with_ana(app)
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "status", "state": "idle", "session_id": None})
            await send_json(charger, {"type": "stop", "session_id": ours})  # the outbox replay
            assert await handled(charger) == []


async def test_a_status_naming_another_stations_session_stops_this_charger_only(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        await add_station_2_with_ana(app)
        url = base_url(app)
        charger_2 = await publisher(url, 2)
        charger_1 = await publisher(url, 1)
        async with charger_1, charger_2:
            theirs = of_type(await tap(charger_2, ANA_CARD), "start")[0]["session_id"]
            await send_json(
                charger_1, {"type": "status", "state": "charging", "session_id": theirs}
            )
            answers = await handled(charger_1)
            # this charger's relay must open (reconciliation), and it is told why
            assert {"type": "stop", "session_id": theirs} in answers
            assert [a["code"] for a in of_type(answers, "error")] == ["SESSION_MISMATCH"]
            assert await handled(charger_2) == []  # nothing reached station 2's charger
        assert (await app.storage.get_session(theirs)).ended_at is None


# --- the emergency latch across a restart -------------------------------------------------------
async def test_the_emergency_latch_and_its_acknowledgement_survive_a_server_restart(tmp_path):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = of_type(await tap(charger), "start")[0]["session_id"]
            await send_json(charger, {"type": "emergency", "session_id": session_id})
            await handled(charger)
        [alert] = await app.storage.list_alerts()
        await app.storage.acknowledge_alert(alert.id, alert.created_at + 60)  # the operator saw it
    async with running_server(db) as app:
        url = base_url(app)
        async with connect(url, "client", 1) as dashboard:
            assert (await receive_type(dashboard, "init"))["charger"]["status"] == "desconectado"
            charger = await publisher(url)
            async with charger:
                # still latched at the charger: it reports the fault, then replays the emergency
                await send_json(charger, {"type": "status", "state": "fault", "session_id": None})
                await send_json(charger, {"type": "emergency", "session_id": session_id})
                assert await handled(charger) == []
                assert (await receive_type(dashboard, "status"))["status"] == "emergencia"
                assert [a["code"] for a in await tap(charger)] == ["STATION_FAULT"]
                assert (
                    await app.storage.list_alerts(unacknowledged_only=True) == []
                )  # no second alert
                assert len(await app.storage.list_alerts()) == 1
                # the local reset at the charger clears the latch, in the database too
                await send_json(charger, {"type": "status", "state": "idle", "session_id": None})
                await handled(charger)
                assert (await receive_type(dashboard, "status"))["status"] == "disponible"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            assert of_type(await tap(charger), "start")  # not latched after the next restart


async def test_a_latched_station_is_emergencia_after_a_restart_before_its_charger_speaks(tmp_path):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "emergency", "session_id": None})
            await handled(charger)
    async with running_server(db) as app:
        url = base_url(app)
        async with connect(url, "client", 1) as dashboard:
            await receive_type(dashboard, "init")
            charger = await publisher(url)
            async with charger:
                assert (await receive_type(dashboard, "status"))["status"] == "emergencia"
                assert [a["code"] for a in await tap(charger)] == ["STATION_FAULT"]

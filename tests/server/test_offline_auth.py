"""Offline authorization against the real server (server/offline_auth.py, docs/protocol.md
"Offline cards"): the signed list pushed on connect and on changes, its bounds, and what the
server does with a charger's `offline_start`."""

import asyncio
import hashlib
import hmac
import json
import sqlite3

import pytest

from server.offline_auth import MAX_CARDS, MAX_FRAME_BYTES
from tests.live_server import (
    base_url,
    connect,
    receive_json,
    receive_type,
    running_server,
    send_json,
    server_clock,
)
from tests.server.handled import handled, of_type

DEMO_UID = "VIRTUAL-1-A4F2E8"
OTHER_DEMO_UID = "04C0FFEE"  # the demo's second card


def verify(message: dict, key: str, station: int = 1) -> bool:
    """What the firmware checks: HMAC-SHA256 keyed by SHA-256(key) over the canonical text."""
    text = "%d|%d|%d|%s" % (
        station,
        message["version"],
        1 if message["offline"] else 0,
        ",".join(message["cards"]),
    )
    digest = hashlib.sha256(key.encode()).digest()
    return hmac.compare_digest(
        hmac.new(digest, text.encode(), hashlib.sha256).hexdigest(), message["sig"]
    )


async def keyed_charger(app):
    """The demo station's charger, authenticated with its station key; returns (ws, list)."""
    ws = await connect(base_url(app), "publisher", 1, token=app.demo_key)
    assert (await receive_json(ws))["type"] == "connected"
    return ws, await receive_type(ws, "auth_list")


async def gone(app, ws) -> None:
    """Close the charger and wait until the server has noticed."""
    await ws.close()
    async with asyncio.timeout(10):
        while app.hub.has_publisher(1):
            await asyncio.sleep(0.01)


async def admin(app, message: dict) -> dict:
    async with connect(base_url(app), "client", "all") as dash:
        await receive_type(dash, "init")
        await send_json(dash, message)
        async with asyncio.timeout(10):
            while True:  # the result, or the refusal (an `error`)
                answer = await receive_json(dash)
                if answer["type"] in ("admin_result", "error"):
                    return answer


@pytest.fixture
async def app(tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as running:
        yield running


async def test_a_keyed_charger_gets_a_signed_list_on_connect(app):
    ws, listed = await keyed_charger(app)
    async with ws:
        assert listed["cards"] == [OTHER_DEMO_UID, DEMO_UID] and listed["offline"] is True
        assert listed["version"] == 1
        assert verify(listed, app.demo_key)
        assert not verify({**listed, "cards": [DEMO_UID, "04A1B2C3"]}, app.demo_key)
    ws, again = await keyed_charger(app)  # nothing changed: the same version again
    async with ws:
        assert again == listed


async def test_a_jwt_charger_gets_no_list(app):
    async with connect(base_url(app), "publisher", 1) as ws:  # a station JWT
        assert (await receive_json(ws))["type"] == "connected"
        await send_json(ws, {"type": "status", "state": "idle", "session_id": None})
        assert of_type(await handled(ws), "auth_list") == []


async def test_card_changes_push_a_new_list_at_once(app):
    ws, _first = await keyed_charger(app)
    async with ws:
        user = (await admin(app, {"type": "admin_add_user", "name": "Ana"}))["user"]["id"]
        await admin(app, {"type": "admin_add_card", "uid": "04:a1:b2:c3", "user_id": user})
        added = await receive_type(ws, "auth_list")
        assert added["cards"] == ["04A1B2C3", OTHER_DEMO_UID, DEMO_UID] and added["version"] == 2
        assert verify(added, app.demo_key)
        await admin(app, {"type": "admin_set_card_enabled", "uid": DEMO_UID, "enabled": False})
        disabled = await receive_type(ws, "auth_list")
        assert disabled["cards"] == ["04A1B2C3", OTHER_DEMO_UID] and disabled["version"] == 3


async def test_two_pushes_at_once_store_one_new_version(app):
    # a change made here and one announced by another process of a fleet arrive together
    ws, first = await keyed_charger(app)
    async with ws:
        await app.storage.set_card_enabled(DEMO_UID, False)
        await asyncio.gather(app.auth_lists.push(1), app.auth_lists.push(1))
        pushed = [await receive_type(ws, "auth_list"), await receive_type(ws, "auth_list")]
        assert [p["version"] for p in pushed] == [first["version"] + 1] * 2
        assert pushed[0]["cards"] == [OTHER_DEMO_UID]
    assert (await app.storage.latest_auth_list(1))[0] == first["version"] + 1


async def test_the_station_setting_off_is_pushed_as_offline_false(app, tmp_path):
    ws, _ = await keyed_charger(app)
    async with ws:
        result = await admin(
            app, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False}
        )
        assert result["ok"] and result["offline_auth"] is False
        off = await receive_type(ws, "auth_list")
        assert off["offline"] is False and verify(off, app.demo_key)
        refused = await admin(
            app, {"type": "admin_set_offline_auth", "station_id": 99, "enabled": False}
        )
        assert refused["type"] == "error" and refused["code"] == "NOT_FOUND"


async def test_the_list_is_bounded_to_the_most_recently_used_cards(app):
    user = await app.storage.add_user("Flota")
    for n in range(100):
        await app.storage.add_card("04%08X" % n, user.id)
    # card 99 was used most recently, card 0 never
    sid = await app.storage.create_session(
        1, user.id, "04%08X" % 99, server_clock(base_url(app))(), 7.0, {}
    )
    await app.storage.end_session(sid, server_clock(base_url(app))(), 0.0, 0.0, "local_stop", {})
    ws, listed = await keyed_charger(app)
    async with ws:
        assert len(listed["cards"]) == MAX_CARDS
        assert len(json.dumps(listed, separators=(",", ":"))) <= MAX_FRAME_BYTES
        assert "04%08X" % 99 in listed["cards"] and listed["cards"] == sorted(listed["cards"])
        assert verify(listed, app.demo_key)


async def test_a_list_of_long_uids_stays_within_the_charger_buffer(app):
    user = await app.storage.add_user("Flota")
    for n in range(70):
        await app.storage.add_card("04%018X" % n, user.id)  # 10-byte UIDs: 20 hex digits
    ws, listed = await keyed_charger(app)
    async with ws:
        assert 30 < len(listed["cards"]) < MAX_CARDS
        assert len(json.dumps(listed, separators=(",", ":"))) <= MAX_FRAME_BYTES


async def offline_start(ws, version, local_id=0x80000123, uid=DEMO_UID, ts=None, wh=1000):
    message = {
        "type": "offline_start",
        "local_id": local_id,
        "uid": uid,
        "version": version,
        "wh": wh,
    }
    if ts is not None:
        message["ts"] = ts
    await send_json(ws, message)
    return await handled(ws)


async def test_an_offline_start_is_accepted_bounded_and_billed(app, tmp_path):
    clock = server_clock(base_url(app))
    ws, listed = await keyed_charger(app)
    clock.advance(600)  # connected ten minutes after list 1 was signed
    await gone(app, ws)  # the charger goes offline: the server notes when
    went = clock()
    clock.advance(120)
    async with connect(base_url(app), "client", 1) as dash:
        await receive_type(dash, "init")
        ws, _ = await keyed_charger(app)
        async with ws:
            # it claims to have started an hour before it went away: placed at gone - 30 s
            seen = await offline_start(ws, listed["version"], ts=int(went - 3600))
            start = of_type(seen, "start")[0]
            assert start["local_id"] == 0x80000123 and start["user_name"] == "Juan Pérez"
            assert "end" not in start
            started = await receive_type(dash, "session_started")
            assert started["offline"] is True and started["session_id"] == start["session_id"]
            record = await app.storage.get_session(start["session_id"])
            assert went - 31 <= record.started_at <= went - 29
            # the relabelled readings and the stop: billed the register delta
            t0 = int(clock()) - 100
            for i in range(5):
                await send_json(
                    ws,
                    {
                        "type": "metrics",
                        "session_id": start["session_id"],
                        "v": 230,
                        "a": 16,
                        "w": 3680,
                        "wh": 1000 + 10 * i,
                        "ts": t0 + 10 * i,
                    },
                )
            await send_json(
                ws, {"type": "stop", "session_id": start["session_id"], "wh": 1045, "ts": t0 + 50}
            )
            await handled(ws)
            ended = await receive_type(dash, "session_ended")
            assert ended["kwh"] == 0.045  # the meter's delta
            # a repeated report of the same local id is the same session (the answer was lost)
            again = of_type(await offline_start(ws, listed["version"], ts=int(went)), "start")
            assert again[0]["session_id"] == start["session_id"]
    with sqlite3.connect(tmp_path / "evse.sqlite3") as db:
        assert db.execute(
            "SELECT count(*) FROM sessions WHERE offline_local_id = ?", (0x80000123,)
        ).fetchone() == (1,)


async def test_a_start_claimed_in_the_future_is_placed_at_now(app):
    clock = server_clock(base_url(app))
    ws, listed = await keyed_charger(app)
    async with ws:
        before = clock()
        start = of_type(await offline_start(ws, listed["version"], ts=int(before + 3600)), "start")[
            0
        ]
        record = await app.storage.get_session(start["session_id"])
        assert before <= record.started_at <= clock()


async def test_offline_starts_the_server_did_not_sign_are_refused(app):
    user = await app.storage.add_user("Ana")
    await app.storage.add_card("04A1B2C3", user.id)  # after list 1 was... not yet signed
    ws, listed = await keyed_charger(app)  # version 1 holds both cards now
    async with ws:
        version = listed["version"]
        for version_, uid in ((version + 5, DEMO_UID), (version, "04FFFFFF")):
            seen = await offline_start(ws, version_, uid=uid)
            error = of_type(seen, "error")[0]
            assert error["code"] == "OFFLINE_START_REFUSED" and error["local_id"] == 0x80000123
            assert of_type(seen, "start") == []
        # the station's setting off: the list it signed says offline false
        await admin(app, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False})
        off = await receive_type(ws, "auth_list")
        seen = await offline_start(ws, off["version"])
        assert of_type(seen, "error")[0]["code"] == "OFFLINE_START_REFUSED"
        # a malformed report is INVALID_MESSAGE, nothing else happens
        await send_json(
            ws, {"type": "offline_start", "local_id": "x", "uid": DEMO_UID, "version": 1}
        )
        assert of_type(await handled(ws), "error")[0]["code"] == "INVALID_MESSAGE"
    assert await app.storage.open_sessions() == []


async def test_an_offline_start_on_a_station_with_another_open_session_is_refused(app):
    ws, listed = await keyed_charger(app)
    async with ws:
        await send_json(ws, {"type": "nfc_scan", "nfc_uid": DEMO_UID})
        online = await receive_type(ws, "start")
        seen = await offline_start(ws, listed["version"], local_id=0x80000001)
        assert of_type(seen, "error")[0]["code"] == "OFFLINE_START_REFUSED"
        assert [s.id for s in await app.storage.open_sessions()] == [online["session_id"]]


async def test_a_card_disabled_while_offline_is_billed_and_the_charger_told_to_end(app):
    ws, listed = await keyed_charger(app)
    await gone(app, ws)
    await app.storage.set_card_enabled(DEMO_UID, False)  # by server.admin while it is away
    ws, newer = await keyed_charger(app)
    async with ws:
        assert DEMO_UID not in newer["cards"]  # the list pushed at this sync no longer has it
        seen = await offline_start(ws, listed["version"])  # it started with the older list
        start = of_type(seen, "start")[0]
        assert start["end"] is True
        sid = start["session_id"]
        clock = server_clock(base_url(app))
        t0 = int(clock()) - 20
        await send_json(
            ws,
            {
                "type": "metrics",
                "session_id": sid,
                "v": 230,
                "a": 16,
                "w": 3680,
                "wh": 1000,
                "ts": t0,
            },
        )
        await send_json(ws, {"type": "stop", "session_id": sid, "wh": 1012, "ts": t0 + 10})
        await handled(ws)
    record = await app.storage.get_session(sid)
    assert record.end_reason == "local_stop" and record.kwh == pytest.approx(0.012)

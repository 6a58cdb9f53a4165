"""Authentication and authorization against a real server: who gets in (4003 otherwise), who may
stop and administer (FORBIDDEN otherwise), station keys and their rotation, the HTTP API's token,
the secret file, AUTH=off."""

import asyncio
import json
import logging
import stat
import urllib.error
import urllib.request

import pytest

from server.auth import ADMIN, OPERATOR, STATION, VIEWER, mint_token
from server.keys import hash_station_key, new_station_key
from tests.live_server import (
    base_url,
    close_code,
    connect,
    http_url,
    publisher,
    receive_json,
    receive_type,
    running_server,
    send_json,
)

CARD = "VIRTUAL-1-A4F2E8"


def dashboard(app, role, estacion=1, stations=None):
    return connect(
        base_url(app),
        "client",
        estacion,
        token=mint_token(app.auth.secret, f"t-{role}", role, stations),
    )


async def open_session(charger) -> int:
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
    return (await receive_type(charger, "start"))["session_id"]


@pytest.mark.parametrize("role", ["publisher", "client"])
@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c"])
async def test_a_connection_without_a_valid_token_is_closed_4003_before_any_message(
    server_url, role, token
):
    async with connect(server_url, role, 1, token=token) as websocket:
        assert await close_code(websocket) == 4003
        assert websocket.close_reason == "invalid token"


async def test_forged_expired_and_wrong_kind_tokens_are_refused_4003(live_app, server_url):
    secret = live_app.auth.secret
    refused = {
        "client": [
            mint_token(b"x" * 64, "mallory", ADMIN),  # signed with another secret
            mint_token(secret, "old", ADMIN, days=-1),  # expired
            mint_token(secret, "st", STATION, [1]),  # a charger's token is not a dashboard's
        ],
        "publisher": [
            mint_token(secret, "st2", STATION, [2]),  # bound to another station
            mint_token(secret, "admin", ADMIN),  # a dashboard's token cannot publish
            mint_token(secret, "old", STATION, [1], days=-1),
        ],
    }
    for role, tokens in refused.items():
        for token in tokens:
            async with connect(server_url, role, 1, token=token) as websocket:
                assert await close_code(websocket) == 4003, (role, token)


async def test_station_key_connects_its_station_only_and_rotation_retires_the_old_key(
    live_app, server_url
):
    old_key, new_key = new_station_key(), new_station_key()
    await live_app.storage.add_station("Garage", 7.0, station_id=2)
    await live_app.storage.set_station_key_hash(2, hash_station_key(old_key))
    async with connect(server_url, "publisher", 2, token=old_key) as charger:
        assert (await receive_json(charger))["type"] == "connected"
    async with connect(server_url, "publisher", 1, token=old_key) as charger:  # not station 1's key
        assert await close_code(charger) == 4003
    await live_app.storage.set_station_key_hash(2, hash_station_key(new_key))  # rotation
    async with connect(server_url, "publisher", 2, token=old_key) as charger:
        assert await close_code(charger) == 4003
    async with connect(server_url, "publisher", 2, token=new_key) as charger:
        assert (await receive_json(charger))["type"] == "connected"


async def test_demo_start_issues_the_demo_station_key_in_a_private_file(
    live_app, server_url, tmp_path
):
    key_file = tmp_path / "station-1.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert live_app.demo_key == key_file.read_text().strip()
    async with connect(server_url, "publisher", 1, token=live_app.demo_key) as charger:
        assert (await receive_json(charger))["type"] == "connected"


async def test_only_operator_or_admin_may_stop_remotely_and_a_refusal_changes_nothing(
    live_app, server_url, caplog
):
    charger = await publisher(server_url)
    async with charger:
        session_id = await open_session(charger)
        async with dashboard(live_app, VIEWER) as viewer:
            await receive_type(viewer, "init")
            with caplog.at_level(logging.WARNING, logger="server"):
                await send_json(viewer, {"type": "stop", "session_id": session_id})
                refusal = await receive_type(viewer, "error")
            assert refusal["code"] == "FORBIDDEN"
            assert any(
                "FORBIDDEN" in r.message
                and "t-viewer (viewer)" in r.message
                and "remote stop" in r.message
                for r in caplog.records
            )
            assert live_app.core.open_session_count() == 1
            assert (await live_app.storage.get_session(session_id)).ended_at is None
        async with dashboard(live_app, OPERATOR) as operator:
            await receive_type(operator, "init")
            await send_json(operator, {"type": "stop", "session_id": session_id})
            assert await receive_type(charger, "stop") == {"type": "stop", "session_id": session_id}


@pytest.mark.parametrize("role, stations", [(VIEWER, None), (OPERATOR, None), (ADMIN, [1])])
async def test_only_an_unrestricted_admin_may_administer(live_app, role, stations):
    users_before = await live_app.storage.list_users()
    async with dashboard(live_app, role, 1, stations) as websocket:
        await receive_type(websocket, "init")
        await send_json(websocket, {"type": "admin_add_user", "name": "Eve", "request_id": 7})
        refusal = await receive_type(websocket, "error")
        assert (refusal["code"], refusal["request_id"]) == ("FORBIDDEN", 7)
        await send_json(websocket, {"type": "admin_set_tariff", "station_id": 1, "tariff": 0})
        assert (await receive_type(websocket, "error"))["code"] == "FORBIDDEN"
    assert await live_app.storage.list_users() == users_before
    assert (await live_app.storage.get_station(1)).tariff == 7.0


async def test_a_token_limited_to_some_stations_sees_only_those(live_app, server_url):
    await live_app.storage.add_station("Garage", 7.0, station_id=2)
    async with dashboard(live_app, OPERATOR, 2, stations=[2]) as allowed:
        assert (await receive_json(allowed)) == {"type": "subscribed", "estacionId": "2"}
    for estacion in (1, "all"):
        async with dashboard(live_app, OPERATOR, estacion, stations=[2]) as refused:
            assert await close_code(refused) == 4003


async def get(url, headers=None):
    return await asyncio.to_thread(_get, url, headers)


def _get(url, headers):
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=10
        ) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_http_api_needs_a_dashboard_token_but_health_and_pages_do_not(live_app):
    assert (await get(http_url(live_app, "/api/stations", token=None)))[0] == 401
    assert (await get(http_url(live_app, "/metrics", token=None)))[0] == 401
    bad = http_url(live_app, "/api/stations", token=None) + "?token=forged"
    assert await get(bad) == (
        401,
        {"code": "UNAUTHORIZED", "message": "a valid dashboard token is required"},
    )
    assert (await get(http_url(live_app, "/api/stations", token=VIEWER)))[0] == 200
    bearer = {"Authorization": "Bearer " + mint_token(live_app.auth.secret, "v", VIEWER)}
    assert (await get(http_url(live_app, "/api/sessions?limit=5", token=None), bearer))[0] == 200
    limited = mint_token(live_app.auth.secret, "v", VIEWER, [1])
    assert (
        await get(
            http_url(live_app, "/api/stations", token=None), {"Authorization": f"Bearer {limited}"}
        )
    )[0] == 403
    assert (await get(http_url(live_app, "/healthz", token=None)))[0] == 200
    page = await asyncio.to_thread(
        urllib.request.urlopen, http_url(live_app, "/", token=None), timeout=10
    )
    with page:
        assert page.status == 200


async def test_signing_secret_is_created_private_and_never_logged(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        async with running_server(tmp_path / "evse.sqlite3") as app:
            secret_file = tmp_path / "secret.key"
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
            assert secret_file.read_text().strip().encode() == app.auth.secret
    assert app.auth.secret.decode() not in caplog.text
    async with running_server(tmp_path / "evse.sqlite3") as again:  # kept across restarts
        assert again.auth.secret == app.auth.secret


async def test_auth_off_lets_everyone_in_and_warns_loudly_at_start(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="server"):
        async with running_server(tmp_path / "evse.sqlite3", auth=False) as app:
            assert "AUTH=off" in caplog.text
            async with connect(base_url(app), "client", 1, token=None) as websocket:
                assert (await receive_json(websocket))["type"] == "subscribed"


async def test_a_charger_cannot_act_on_another_stations_session(live_app, server_url):
    await live_app.storage.add_station("Garage", 7.0, station_id=2)
    victim = await publisher(server_url, 1)
    intruder = await publisher(server_url, 2)  # a valid credential, but for station 2
    async with victim, intruder:
        session_id = await open_session(victim)
        await send_json(
            intruder, {"type": "stop", "session_id": session_id}
        )  # a no-op on station 2
        await send_json(
            intruder,
            {"type": "metrics", "session_id": session_id, "v": 230, "a": 10, "w": 2300, "wh": 9e6},
        )
        assert (await receive_type(intruder, "error"))["code"] == "SESSION_MISMATCH"
        assert live_app.core.open_session_count() == 1
        await live_app.storage.flush()
        assert await live_app.storage.readings(session_id) == []
        assert (await live_app.storage.get_session(session_id)).ended_at is None

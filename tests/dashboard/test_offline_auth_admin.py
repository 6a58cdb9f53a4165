"""A station's offline authorization as the backoffice reads and changes it (issue 13), against
the real server: `offline_auth` in /api/stations, `admin_list_offline_auth` (the admin page's
column: setting, station key, latest signed list), and what a token that may not administer,
or a malformed message, gets: a refusal that changes nothing and sends the charger nothing."""

import asyncio

import pytest

from server.auth import OPERATOR, VIEWER, mint_token
from tests.dashboard.helpers import http_get
from tests.live_server import (
    base_url,
    connect,
    receive_json,
    receive_type,
    send_json,
    server_clock,
)
from tests.server.handled import handled, of_type


async def keyed_charger(app):
    ws = await connect(base_url(app), "publisher", 1, token=app.demo_key)
    assert (await receive_json(ws))["type"] == "connected"
    return ws, await receive_type(ws, "auth_list")


def dashboard(app, role=None):
    token = {} if role is None else {"token": mint_token(app.auth.secret, f"t-{role}", role)}
    return connect(base_url(app), "client", "all", **token)


async def ask(ws, message: dict) -> dict:
    await send_json(ws, message)
    while True:
        answer = await receive_json(ws)
        if answer["type"] in ("admin_result", "error"):
            return answer


async def stations_api(app) -> dict:
    return {s["id"]: s for s in (await http_get(app, "/api/stations")).json()["items"]}


async def test_api_stations_shows_each_station_s_offline_setting(live_app):
    await live_app.storage.add_station("Garage", 6.0, station_id=2)
    await live_app.storage.set_offline_auth(2, False)
    listed = await stations_api(live_app)
    assert (listed[1]["offline_auth"], listed[2]["offline_auth"]) == (True, False)
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        answer = await ask(
            admin, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False}
        )
        assert answer["ok"] and answer["offline_auth"] is False
    assert (await stations_api(live_app))[1]["offline_auth"] is False


async def test_the_admin_listing_gives_setting_key_and_latest_list_of_seed_stations(live_app):
    await live_app.storage.add_station("Garage", 6.0, station_id=2)  # no key: never a list
    await live_app.storage.add_station("Wallbox", 7.0, station_id=3, charge_point_id="CP-0042")
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        before = (await ask(admin, {"type": "admin_list_offline_auth", "request_id": 4}))[
            "stations"
        ]
        assert before == {
            "1": {"offline_auth": True, "keyed": True, "list": None},
            "2": {"offline_auth": True, "keyed": False, "list": None},
        }  # OCPP station 3 gets no list: not listed
        ws, listed = await keyed_charger(live_app)
        async with ws:
            answer = await ask(admin, {"type": "admin_list_offline_auth"})
            latest = answer["stations"]["1"]["list"]
            assert {k: latest[k] for k in ("version", "offline", "cards")} == {
                "version": listed["version"],
                "offline": True,
                "cards": len(listed["cards"]),
            }
            await ask(admin, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False})
            assert (await receive_type(ws, "auth_list"))["offline"] is False
            after = (await ask(admin, {"type": "admin_list_offline_auth"}))["stations"]["1"]
            assert after["offline_auth"] is False
            assert (after["list"]["version"], after["list"]["offline"]) == (
                listed["version"] + 1,
                False,
            )


async def statements_while(app, work) -> tuple[list[str], object]:
    """The SQL the live server's SQLite connection ran while `work()` was awaited, and what
    it returned."""
    ran: list[str] = []
    await app.storage._db.run(lambda conn: conn.set_trace_callback(ran.append))
    try:
        result = await work()
    finally:
        await app.storage._db.run(lambda conn: conn.set_trace_callback(None))
    return ran, result


async def test_the_station_list_and_the_admin_listing_are_one_query_however_many_stations(
    live_app,
):
    """A fleet of chargers: the dashboard's station list and the admin page's offline column
    cost one query each, not one to three per station (they were 1 + N and 1 + 3N)."""
    for number in range(2, 31):
        ocpp = {"charge_point_id": f"CP-{number:04d}"} if number % 10 == 0 else {}
        await live_app.storage.add_station(f"Estación {number}", 7.0, station_id=number, **ocpp)
    await live_app.storage.set_offline_auth(7, False)
    ran, listed = await statements_while(live_app, lambda: stations_api(live_app))
    assert len(ran) == 1, ran
    assert len(listed) == 30 and [n for n in listed if not listed[n]["offline_auth"]] == [7]
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        ran, answer = await statements_while(
            live_app, lambda: ask(admin, {"type": "admin_list_offline_auth"})
        )
    assert len(ran) == 1, ran
    seed = {str(n) for n in range(1, 31) if n % 10}
    assert set(answer["stations"]) == seed
    assert [n for n in seed if not answer["stations"][n]["offline_auth"]] == ["7"]
    assert [n for n in seed if answer["stations"][n]["keyed"]] == ["1"]  # the demo's key


async def test_offline_starts_asked_of_an_ocpp_station_are_refused_with_not_supported(live_app):
    await live_app.storage.add_station("Wallbox", 7.0, station_id=3, charge_point_id="CP-0042")
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        for enabled in (False, True):
            refusal = await ask(
                admin,
                {
                    "type": "admin_set_offline_auth",
                    "station_id": 3,
                    "enabled": enabled,
                    "request_id": "r3",
                },
            )
            assert (refusal["type"], refusal["code"], refusal["request_id"]) == (
                "error",
                "NOT_SUPPORTED",
                "r3",
            )
            assert refusal["message"].startswith("station 3 is an OCPP 1.6J station")
        missing = await ask(
            admin, {"type": "admin_set_offline_auth", "station_id": 9, "enabled": False}
        )
        assert missing["code"] == "NOT_FOUND"  # unknown stays NOT_FOUND
    assert (await live_app.storage.get_station(3)).offline_auth is True  # as it was


@pytest.mark.parametrize("role", [VIEWER, OPERATOR])
async def test_a_token_that_may_not_administer_is_refused_and_nothing_changes(live_app, role):
    ws, _ = await keyed_charger(live_app)
    async with ws, dashboard(live_app, role) as other:
        await receive_type(other, "init")
        for message in (
            {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False},
            {"type": "admin_list_offline_auth"},
        ):
            refusal = await ask(other, {**message, "request_id": 9})
            assert (refusal["type"], refusal["code"], refusal["request_id"]) == (
                "error",
                "FORBIDDEN",
                9,
            )
        assert await live_app.storage.offline_auth(1) is True
        assert (await stations_api(live_app))[1]["offline_auth"] is True
        assert of_type(await handled(ws), "auth_list") == []  # the charger was sent nothing


@pytest.mark.parametrize(
    "message, field",
    [
        ({"station_id": 1, "enabled": "off"}, "enabled"),
        ({"station_id": 1}, "enabled"),
        ({"station_id": "1", "enabled": False}, "station_id"),
        ({"station_id": 0, "enabled": False}, "station_id"),
    ],
)
async def test_a_malformed_setting_is_refused_with_its_field_and_changes_nothing(
    live_app, message, field
):
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        refusal = await ask(admin, {"type": "admin_set_offline_auth", **message})
        assert refusal["code"] == "INVALID_MESSAGE"
        assert refusal["message"].startswith(f"admin_set_offline_auth: {field} ")
    assert await live_app.storage.offline_auth(1) is True


async def test_the_setting_turned_off_while_the_charger_is_away_holds_from_its_next_sync(
    live_app,
):
    """What the README promises: a charger offline when the setting is turned off still starts
    listed cards with the list it has; that session is accepted and billed when reported, and
    the list it gets at that reconnect says offline false (its next offline tap is refused)."""
    ws, held = await keyed_charger(live_app)  # list v1: offline true
    await ws.close()
    async with asyncio.timeout(10):
        while live_app.hub.has_publisher(1):
            await asyncio.sleep(0.01)
    async with dashboard(live_app) as admin:
        await receive_type(admin, "init")
        await ask(admin, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False})
    ws, synced = await keyed_charger(live_app)
    async with ws:
        assert (synced["offline"], synced["version"]) == (False, held["version"] + 1)
        offline_start = {
            "type": "offline_start",
            "uid": "VIRTUAL-1-A4F2E8",
            "wh": 1000,
        }
        seen = await send_and_handle(
            ws, {**offline_start, "local_id": 0x80000001, "version": held["version"]}
        )
        start = of_type(seen, "start")[0]  # tapped before the sync: accepted
        assert "end" not in start
        sid, t0 = start["session_id"], int(server_clock(base_url(live_app))()) - 20
        reading = {"type": "metrics", "session_id": sid, "v": 230, "a": 16, "w": 3680}
        await send_json(ws, {**reading, "wh": 1000, "ts": t0})
        await send_json(ws, {"type": "stop", "session_id": sid, "wh": 1012, "ts": t0 + 10})
        await handled(ws)
        record = await live_app.storage.get_session(sid)
        assert record.end_reason == "local_stop" and record.kwh == pytest.approx(0.012)
        seen = await send_and_handle(
            ws, {**offline_start, "local_id": 0x80000002, "version": synced["version"]}
        )
        assert of_type(seen, "error")[0]["code"] == "OFFLINE_START_REFUSED"


async def send_and_handle(ws, message: dict) -> list[dict]:
    await send_json(ws, message)
    return await handled(ws)

"""Three server processes' worth of App in one event loop, one real PostgreSQL, one real
nats-server: fan-out, remote commands, shared status and ownership moves (server/cluster/).

Each App is the real server (websockets on its own port, its own session core); they share
only what a fleet shares: the database at DATABASE_URL and the NATS bus. The subprocess
failover (SIGKILL) is in test_failover.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from contextlib import AsyncExitStack

import pytest

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
_names = itertools.count(1)


@pytest.fixture
async def fleet(postgres_server, nats_server, tmp_path):
    """Apps A, B, C on one fresh database and one bus."""
    database = postgres_server.create_database(f"fleet{next(_names)}")
    async with AsyncExitStack() as stack:
        apps = []
        for name in "ABC":
            (tmp_path / name).mkdir()
            apps.append(
                await stack.enter_async_context(
                    running_server(
                        tmp_path / name / "evse.sqlite3",
                        secret_file=tmp_path / "secret.key",
                        database_url=database,
                        nats_url=nats_server.url,
                        server_id=f"test-{name}",
                    )
                )
            )
        yield apps


async def dashboard(app, station="1"):
    websocket = await connect(base_url(app), "client", station)
    await receive_type(websocket, "init")
    return websocket


async def eventually(check, timeout=10.0):
    """Poll `check()` (sync or async) until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            result = await result if asyncio.iscoroutine(result) else result
            if result:
                return result
            await asyncio.sleep(0.05)


async def stations_api(app) -> dict:
    """GET /api/stations of `app` (from a thread: the servers run in this event loop)."""

    def get() -> dict:
        with urllib.request.urlopen(http_url(app, "/api/stations"), timeout=10) as answer:
            return {item["id"]: item for item in json.load(answer)["items"]}

    return await asyncio.to_thread(get)


async def station_with_status(app, status: str):
    station = (await stations_api(app))[1]
    return station if station["status"] == status else None


def metrics(session_id: int, wh: int) -> dict:
    """A charger's reading of 2.3 kW with the meter register at `wh`."""
    return {
        "type": "metrics",
        "session_id": session_id,
        "v": 230.0,
        "a": 10.0,
        "w": 2300.0,
        "wh": wh,
    }


async def start_session(charger) -> int:
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
    start = await receive_json(charger)
    assert start["type"] == "start", start
    return start["session_id"]


async def test_a_dashboard_on_b_sees_the_charger_on_a_and_a_stop_from_c_ends_its_session(fleet):
    a, b, c = fleet
    on_a = await dashboard(a)
    on_b = await dashboard(b)
    charger = await publisher(base_url(a))
    async with on_a, on_b, charger:
        assert await receive_json(on_b) == {
            "type": "status",
            "charger_id": 1,
            "status": "disponible",
        }
        assert await receive_json(on_a) == {
            "type": "status",
            "charger_id": 1,
            "status": "disponible",
        }
        session_id = await start_session(charger)
        for websocket in (on_a, on_b):
            assert (await receive_json(websocket))["type"] == "session_started"
            assert (await receive_json(websocket))["status"] == "cargando"
        await send_json(charger, metrics(session_id, 5000))
        seen_b = await receive_json(on_b)
        assert seen_b["type"] == "metrics" and seen_b["w"] == 2300.0 and seen_b["charger_id"] == 1
        assert await receive_json(on_a) == seen_b  # the same message, once, on both processes

        # C has neither the charger nor the dashboard: its stop goes to A over the bus
        on_c = await connect(base_url(c), "client", "all")
        async with on_c:
            await receive_type(on_c, "init")
            await send_json(on_c, {"type": "stop", "session_id": session_id, "charger_id": 1})
            assert await receive_json(charger) == {"type": "stop", "session_id": session_id}
            for websocket in (on_a, on_b, on_c):
                ended = await receive_type(websocket, "session_ended")
                assert ended["session_id"] == session_id and ended["reason"] == "remote_stop"
                assert (await receive_json(websocket))["status"] == "disponible"
        # no duplicate, no echo: the next thing B's and A's dashboards get is the charger leaving
        await charger.close()
        for websocket in (on_a, on_b):
            assert await receive_json(websocket) == {
                "type": "status",
                "charger_id": 1,
                "status": "desconectado",
            }
    stored = await a.storage.get_session(session_id)
    assert stored.end_reason == "remote_stop" and stored.ended_at is not None


async def test_init_and_api_stations_anywhere_show_the_charger_where_it_is(fleet):
    a, b, c = fleet
    charger = await publisher(base_url(a))
    async with charger:
        session_id = await start_session(charger)
        await send_json(charger, metrics(session_id, 1000))
        await send_json(charger, metrics(session_id, 1001))

        async def init_on_c():
            websocket = await connect(base_url(c), "client", "1")
            async with websocket:
                charger_view = (await receive_type(websocket, "init"))["charger"]
            return charger_view if charger_view["status"] == "cargando" else None

        view = await eventually(init_on_c)
        assert view["session"]["session_id"] == session_id
        # the subscriptions on C asked the charger on A for its state, as on one server
        assert await receive_type(charger, "sync_request") == {
            "type": "sync_request",
            "from": "server",
        }
        listed = await eventually(lambda: station_with_status(b, "cargando"))
        assert listed["session"]["session_id"] == session_id
        health = await asyncio.to_thread(
            lambda: json.load(
                urllib.request.urlopen(f"http://127.0.0.1:{a.port}/healthz", timeout=10)
            )
        )
        assert health["server_id"] == "test-A" and health["nats_connected"] is True
        assert health["stations_owned"] == 1 and health["chargers_connected"] == 1
        assert health["open_sessions"] == 1
    # the charger went away from A: every process shows it desconectado, session still open
    listed = await eventually(lambda: station_with_status(c, "desconectado"))
    assert listed["session"]["session_id"] == session_id


async def test_a_stop_for_a_station_nobody_serves_is_charger_offline_at_once(fleet):
    _a, b, _c = fleet
    on_b = await dashboard(b)
    async with on_b:
        await send_json(on_b, {"type": "stop", "charger_id": 1})
        answer = await receive_json(on_b, timeout=3)  # at once: NATS says no responder
    assert answer == {"type": "error", "message": "ESP32 no conectado", "code": "CHARGER_OFFLINE"}


async def test_a_charger_reconnecting_to_another_process_moves_the_station_there(fleet):
    a, b, c = fleet
    on_c = await dashboard(c)
    old = await publisher(base_url(a))
    async with on_c, old:
        assert (await receive_json(on_c))["status"] == "disponible"
        session_id = await start_session(old)
        await send_json(old, metrics(session_id, 7000))
        await receive_type(on_c, "metrics")
        await eventually(lambda: a.storage.durable_mark >= a.storage.write_mark())
        # the charger (a half-open old socket still up on A) reconnects to B
        new = await publisher(base_url(b))
        async with new:
            # A lets go: its connection is closed as replaced, without telling anyone desconectado
            await asyncio.wait_for(old.wait_closed(), 10)
            assert old.close_code == 4008
            await send_json(
                new, {"type": "status", "state": "charging", "session_id": session_id, "wh": 7000}
            )
            await send_json(new, metrics(session_id, 7001))
            between = []
            while (seen := await receive_json(on_c))["type"] != "metrics":
                between.append(seen)
            assert seen["session_id"] == session_id and seen["kwh"] == 0.001  # 7000 -> 7001 Wh
            # the dashboard on C never saw the charger go desconectado while it moved
            assert {"type": "status", "charger_id": 1, "status": "desconectado"} not in between
            await send_json(new, {"type": "stop", "session_id": session_id, "wh": 7002})
            ended = await receive_type(on_c, "session_ended")
            assert ended["kwh"] == 0.002  # the meter's delta, across the two processes
    stored = await b.storage.get_session(session_id)
    assert stored.end_reason == "local_stop" and round(stored.kwh * 1000, 6) == 2


async def test_an_owner_whose_claim_was_taken_silently_lets_go_at_its_next_write_or_heartbeat(
    fleet,
):
    # B claims station 1 in the database but its `claimed` notice never reaches A (lost on the
    # bus): A's next write of the station's shared status is refused, and A drops the charger
    a, b, c = fleet
    old = await publisher(base_url(a))
    async with old:
        session_id = await start_session(old)
        epoch = a.fleet.epoch(1) + 1
        assert await b.fleet.presence.claim(1, b.fleet.server_id, epoch)
        row = (await c.fleet.presence.views(1))[1]
        assert (row["owner"], row["epoch"]) == ("test-B", epoch)
        # a reading reaches the shared row with A's next heartbeat (made quick here)
        a.fleet.heartbeat_s = 0.2
        await send_json(old, metrics(session_id, 100))
        await asyncio.wait_for(old.wait_closed(), 10)
        assert old.close_code == 4008
    assert 1 not in a.fleet.held
    refused = await a.fleet.presence.write_many(
        a.fleet.server_id, [(1, epoch - 1, True, {"id": 1})]
    )
    assert refused == {1}


async def test_a_stale_owner_s_session_end_is_refused_and_nobody_is_told_it_ended(fleet):
    # B took station 1 in the database (its notice lost on the way to A); the charger's stop
    # reaches A first: the storage refuses A's end (StaleOwner), A tells no dashboard, lets go
    # of the charger, and the session stays open for its new process to end
    a, b, c = fleet
    on_c = await dashboard(c)
    old = await publisher(base_url(a))
    async with on_c, old:
        assert (await receive_json(on_c))["status"] == "disponible"
        session_id = await start_session(old)
        assert (await receive_json(on_c))["type"] == "session_started"
        assert (await receive_json(on_c))["status"] == "cargando"
        await b.storage.claim_station(1, "test-B")  # the storage's fence moves on, quietly
        await send_json(old, {"type": "stop", "session_id": session_id})
        await asyncio.wait_for(old.wait_closed(), 10)
        assert old.close_code == 4008
        stored = await c.storage.get_session(session_id)
        assert stored.ended_at is None and stored.end_reason is None
        # the charger comes back, to B, which takes the session on: the next thing C's
        # dashboard hears is the station charging there (no session_ended, no desconectado)
        new = await publisher(base_url(b))
        async with new:
            assert await receive_json(on_c) == {
                "type": "status",
                "charger_id": 1,
                "status": "cargando",
            }
            await send_json(new, {"type": "stop", "session_id": session_id})
            assert (await receive_json(on_c))["type"] == "session_ended"
    stored = await c.storage.get_session(session_id)
    assert stored.end_reason == "local_stop"


async def test_a_station_whose_process_stopped_heartbeating_shows_desconectado_everywhere_else(
    fleet,
):
    a, b, c = fleet
    charger = await publisher(base_url(a))
    async with charger:
        session_id = await start_session(charger)
        await eventually(lambda: station_with_status(b, "cargando"))
        # A freezes (its heartbeat stops) and its last heartbeat is now older than the expiry
        a.fleet._writer.cancel()
        await asyncio.gather(a.fleet._writer, return_exceptions=True)
        await b.fleet.presence.pool.execute(
            "UPDATE station_presence SET heartbeat_at = now() - make_interval(secs => $1)"
            " WHERE station_id = 1",
            b.fleet.presence.expiry_s + 1,
        )
        listed = (await stations_api(b))[1]
        assert listed["status"] == "desconectado"
        assert listed["session"]["session_id"] == session_id  # the session stays open, and shown
        websocket = await connect(base_url(c), "client", "1")
        async with websocket:
            assert (await receive_type(websocket, "init"))["charger"]["status"] == "desconectado"


async def test_a_charger_reconnecting_to_the_same_process_keeps_the_station_s_epoch(fleet):
    # a WiFi drop and back to the same process moves nothing: the epoch stays, so no write of
    # the session still in flight is refused as stale, and the session goes on
    a, _b, _c = fleet
    first = await publisher(base_url(a))
    async with first:
        session_id = await start_session(first)
        owner = await a.storage.station_owner(1)
    second = await publisher(base_url(a))
    async with second:
        await send_json(
            second, {"type": "status", "state": "charging", "session_id": session_id, "wh": 10}
        )
        await send_json(second, metrics(session_id, 10))
        await send_json(second, {"type": "stop", "session_id": session_id, "wh": 11})
        ended = await eventually(lambda: _ended(a, session_id))
    assert await a.storage.station_owner(1) == owner == ("test-A", owner[1])
    assert ended.end_reason == "local_stop" and round(ended.kwh * 1000, 6) == 1


async def _ended(app, session_id):
    session = await app.storage.get_session(session_id)
    return session if session.ended_at is not None else None


async def keyed_charger(app, key: str):
    """Station 1's charger authenticated with its station key (it gets offline card lists)."""
    websocket = await connect(base_url(app), "publisher", 1, token=key)
    assert (await receive_json(websocket))["type"] == "connected"
    return websocket, await receive_type(websocket, "auth_list")


async def test_only_the_stations_owner_makes_and_pushes_its_offline_list(fleet):
    # issue 13 in a fleet: the list's versions live in the shared database, the process that
    # owns the station pushes them, and a process that lost the station pushes nothing more
    a, b, c = fleet
    key = a.demo_key  # A seeded the demo station; the key works on every process
    assert key is not None
    old, first = await keyed_charger(a, key)
    async with old:
        assert first["version"] == 1 and CARD in first["cards"]
        new, moved = await keyed_charger(b, key)  # the charger reconnects to B
        async with new:
            await asyncio.wait_for(old.wait_closed(), 10)
            assert old.close_code == 4008
            assert moved == first  # nothing changed: the same version, from the database
            on_c = await dashboard(c)
            async with on_c:
                await send_json(
                    on_c, {"type": "admin_set_card_enabled", "uid": CARD, "enabled": False}
                )
                assert (await receive_type(on_c, "admin_result"))["card"]["enabled"] is False
            # C has no charger of station 1: its change is announced on the bus and B, the
            # owner, pushes the new list at once (not at its periodic check, 60 s away)
            changed = await receive_type(new, "auth_list")
            assert changed["version"] == 2 and CARD not in changed["cards"]
            assert await c.storage.latest_auth_list(1) == (
                2,
                True,
                ",".join(changed["cards"]),
                pytest.approx(b.clock(), abs=60),
            )
            # B loses the station (its write refused: another process claimed it) while its
            # charger's socket is still open: a changed list is neither stored nor sent
            await b.storage.set_card_enabled(CARD, True)
            b.fleet.stale(1, "claimed elsewhere (test)")
            assert await b.auth_lists.push(1) is False
            await asyncio.wait_for(new.wait_closed(), 10)
            assert new.close_code == 4008
    assert (await c.storage.latest_auth_list(1))[0] == 2


async def test_a_claim_that_lost_the_storage_race_leaves_the_station_to_the_newer_one(fleet):
    # the charger's old connection reaches A and its newer one B at the same moment: A's storage
    # claim comes first (epoch 1), then B claims the station wholly (epoch 2, storage and shared
    # row) before A's shared-row claim lands. A must not take the row over: B keeps the
    # charger, A closes its own connection as replaced (not both, each believing it lost)
    a, b, c = fleet
    storage_claim = a.storage.claim_station
    newer = {}

    async def claim_while_b_claims_too(station_id, owner):
        granted = await storage_claim(station_id, owner)
        a.storage.claim_station = storage_claim
        newer["charger"] = await publisher(base_url(b))  # B's claim is complete: `connected`
        return granted

    a.storage.claim_station = claim_while_b_claims_too
    old = await connect(base_url(a), "publisher", 1)
    async with old:
        assert await close_code(old) == 4008
    async with newer["charger"] as charger:
        owner = await c.storage.station_owner(1)
        assert owner == ("test-B", 2)
        row = (await c.fleet.presence.views(1))[1]
        assert (row["owner"], row["epoch"], row["online"]) == ("test-B", 2, True)
        assert 1 not in a.fleet.held and a.fleet.epoch(1) == 1  # A's writes stay fenced off
        assert await b.fleet.presence.heartbeat("test-B", {1: 2}) == set()  # B still holds it
        assert await a.fleet.presence.write_many("test-A", [(1, 1, True, {"id": 1})]) == {1}
        # and B serves the charger: a session starts and is seen from C
        session_id = await start_session(charger)
        listed = await eventually(lambda: station_with_status(c, "cargando"))
        assert listed["session"]["session_id"] == session_id
    assert 1 in b.fleet.held


async def test_a_process_that_missed_a_claim_takes_the_station_as_stored_when_its_charger_returns(
    fleet,
):
    # A served station 1 until its charger moved to B; B's `claimed` notice never reached A, and
    # B ended the session. The charger comes back to A before A's next heartbeat would have
    # told it: A must take the station as the database has it (no session open), not as it
    # last knew it (a stuck session: the next tap refused, dashboards shown `cargando`)
    a, b, c = fleet
    first = await publisher(base_url(a))
    async with first:
        session_id = await start_session(first)
    await eventually(lambda: station_with_status(c, "desconectado"))  # A wrote its row
    await a.fleet._subscriptions[1].unsubscribe()  # A hears no claim any more
    a.fleet._writer.cancel()  # nor learns it from a heartbeat
    await asyncio.gather(a.fleet._writer, return_exceptions=True)
    moved = await publisher(base_url(b))
    async with moved:
        await send_json(
            moved, {"type": "status", "state": "charging", "session_id": session_id, "wh": 10}
        )
        await send_json(moved, {"type": "stop", "session_id": session_id, "wh": 11})
        await eventually(lambda: _ended(b, session_id))
    back = await publisher(base_url(a))
    async with back:
        on_a = await connect(base_url(a), "client", "1")
        async with on_a:
            view = (await receive_type(on_a, "init"))["charger"]
        assert view["status"] == "disponible" and view["session"] is None
        await send_json(back, {"type": "nfc_scan", "nfc_uid": "04C0FFEE"})  # the next tap
        start = await receive_type(back, "start")  # starts a new session
        assert start["session_id"] != session_id


async def test_a_session_s_kwh_reaches_the_other_processes_with_the_owner_s_heartbeat(fleet):
    # readings do not write the shared row one by one (one PostgreSQL write per reading per
    # station); the owner's heartbeat carries the latest kWh to `init` on the other processes
    a, _b, c = fleet
    charger = await publisher(base_url(a))
    async with charger:
        session_id = await start_session(charger)
        await send_json(charger, metrics(session_id, 1000))
        await eventually(lambda: station_with_status(c, "cargando"))  # the session's row is in
        a.fleet.heartbeat_s = 0.2  # (5 s in production)
        await send_json(charger, metrics(session_id, 1001))

        async def init_on_c():
            websocket = await connect(base_url(c), "client", "1")
            async with websocket:
                session = (await receive_type(websocket, "init"))["charger"]["session"]
            return session if session and session["kwh"] == 0.001 else None

        session = await eventually(init_on_c)
        assert session["session_id"] == session_id
        assert (await stations_api(c))[1]["session"]["kwh"] == 0.001

"""OCPP 1.6J chargers on the real server (issue 12): an independent charge point (npm `ocpp-rpc`,
strict schema validation) drives whole sessions over /ocpp/{chargePointId} while a real
dashboard client watches; billing is checked in the real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from base64 import b64encode

import pytest
from websockets.asyncio.client import connect as ws_connect

from server.core import REMOTE_STOP
from server.keys import hash_station_key, new_station_key
from server.storage import open_storage
from tests.dashboard.helpers import http_get
from tests.live_server import (
    base_url,
    connect,
    receive_json,
    running_server,
    send_json,
    server_clock,
)
from tests.ocpp.charge_point import ChargePoint, iso
from tests.storage.conftest import wait_until

CP_ID = "CP-0042"
CARD = "04A32B1C"
DISABLED_CARD = "04A32B1D"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Wallbox 22"}


@pytest.fixture
async def ocpp_server(tmp_path):
    """A real server with one OCPP station (id 5), its key, a user with a card and a disabled one."""
    db = tmp_path / "evse.sqlite3"
    storage = await open_storage(db)
    try:
        await storage.add_station("Wallbox", 0.5, station_id=5, charge_point_id=CP_ID)
        key = new_station_key()
        await storage.set_station_key_hash(5, hash_station_key(key))
        user = await storage.add_user("Ana")
        await storage.add_card(CARD, user.id)
        await storage.add_card(DISABLED_CARD, user.id)
        await storage.set_card_enabled(DISABLED_CARD, False)
    finally:
        await storage.close()
    async with running_server(db, demo=False) as app:
        app.test_key = key
        yield app


async def next_of(dashboard, kind: str) -> dict:
    while True:
        message = await receive_json(dashboard)
        if message["type"] == kind:
            return message


def sample(ts: float, register_wh: float, w: float = 0.0, v: float = 0.0, a: float = 0.0) -> list:
    return [
        {
            "timestamp": iso(ts),
            "sampledValue": [
                {
                    "value": str(register_wh),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                },
                {"value": str(w), "measurand": "Power.Active.Import", "unit": "W"},
                {"value": str(v), "measurand": "Voltage", "unit": "V"},
                {"value": str(a), "measurand": "Current.Import", "unit": "A"},
            ],
        }
    ]


async def boot_and_start(cp, app, start_wh: int = 1000) -> int:
    boot = await cp.call("BootNotification", BOOT)
    assert boot["status"] == "Accepted" and boot["interval"] > 0
    assert (await cp.call("Authorize", {"idTag": CARD}))["idTagInfo"]["status"] == "Accepted"
    started = await cp.call(
        "StartTransaction",
        {
            "connectorId": 1,
            "idTag": CARD,
            "meterStart": start_wh,
            "timestamp": iso(server_clock(base_url(app))()),
        },
    )
    assert started["idTagInfo"]["status"] == "Accepted"
    return started["transactionId"]


async def test_a_whole_session_is_shown_live_and_billed_the_register_delta(ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        assert (await receive_json(dashboard))["type"] == "subscribed"
        assert (await receive_json(dashboard))["charger"]["status"] == "desconectado"
        assert (await cp.connect(url, CP_ID, app.test_key)) == {
            "connected": True,
            "protocol": "ocpp1.6",
        }
        assert (await next_of(dashboard, "status"))["status"] == "disponible"
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
        )
        transaction = await boot_and_start(cp, app, start_wh=1000)
        started = await next_of(dashboard, "session_started")
        assert (started["session_id"], started["user_name"]) == (transaction, "Ana")
        assert (await next_of(dashboard, "metrics"))[
            "kwh"
        ] == 0  # meterStart: the register's origin
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
        )
        clock.advance(600)  # ten minutes of charging at 7.2 kW: 1.2 kWh
        await cp.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": transaction,
                "meterValue": sample(clock(), 2200, w=7200, v=230, a=31.3),
            },
        )
        live = await next_of(dashboard, "metrics")
        assert (live["session_id"], live["v"], live["a"], live["w"]) == (
            transaction,
            230,
            31.3,
            7200,
        )
        assert live["kwh"] == pytest.approx(1.2)
        clock.advance(300)
        stopped = await cp.call(
            "StopTransaction",
            {
                "transactionId": transaction,
                "meterStop": 2800,
                "timestamp": iso(clock()),
                "reason": "Local",
            },
        )
        assert stopped["idTagInfo"]["status"] == "Accepted"
        ended = await next_of(dashboard, "session_ended")
        assert ended["session_id"] == transaction and ended["kwh"] == pytest.approx(1.8)
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        )
    session = await app.storage.get_session(transaction)
    assert session.ended_at is not None and session.station_id == 5
    assert session.kwh == pytest.approx((2800 - 1000) / 1000)  # billed = the register delta
    assert session.cost == pytest.approx(0.9)
    exported = await http_get(app, "/api/sessions.csv")
    [row] = list(csv.DictReader(io.StringIO(exported.body.decode("utf-8-sig"))))
    assert list(row.values())[:4] == [str(transaction), "5", "Ana", CARD]
    assert "1.800" in row.values() and "0.90" in row.values() and "local_stop" in row.values()


async def test_the_dashboard_stop_sends_remote_stop_transaction_and_the_late_stop_is_harmless(
    ocpp_server,
):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        transaction = await boot_and_start(cp, app)
        await next_of(dashboard, "session_started")
        await send_json(dashboard, {"type": "stop", "session_id": transaction})
        assert (await next_of(dashboard, "session_ended"))["session_id"] == transaction
        assert (await cp.wait_received("RemoteStopTransaction")) == {"transactionId": transaction}
        clock.advance(60)
        stopped = await cp.call(
            "StopTransaction",
            {"transactionId": transaction, "meterStop": 1010, "timestamp": iso(clock())},
        )
        assert stopped["idTagInfo"]["status"] == "Accepted"
        assert (await next_of(dashboard, "status"))["status"] == "disponible"
    assert (await app.storage.get_session(transaction)).end_reason == REMOTE_STOP


async def test_replayed_transaction_messages_are_accepted_once(ocpp_server):
    """A charge point resends what it queued offline (OCPP 1.6 §3.7): same transactionId, the
    same reading counted once, a second stop harmless."""
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await cp.call("BootNotification", BOOT)
        start = {"connectorId": 1, "idTag": CARD, "meterStart": 5000, "timestamp": iso(clock())}
        first = await cp.call("StartTransaction", start)
        again = await cp.call("StartTransaction", start)
        assert (
            again["transactionId"] == first["transactionId"]
            and again["idTagInfo"]["status"] == "Accepted"
        )
        transaction = first["transactionId"]
        clock.advance(600)
        values = {
            "connectorId": 1,
            "transactionId": transaction,
            "meterValue": sample(clock(), 5500, w=3000),
        }
        await cp.call("MeterValues", values)
        await cp.call("MeterValues", values)
        clock.advance(600)
        stop = {"transactionId": transaction, "meterStop": 6000, "timestamp": iso(clock())}
        await cp.call("StopTransaction", stop)
        await cp.close()
    async with ChargePoint() as cp:  # reconnected: the queue is replayed once more
        await cp.connect(url, CP_ID, app.test_key)
        assert (await cp.call("StartTransaction", start))["transactionId"] == transaction
        await cp.call("MeterValues", values)
        await cp.call("StopTransaction", stop)
    sessions, _ = await app.storage.list_sessions(station_id=5)
    assert [s.id for s in sessions] == [transaction]
    assert sessions[0].kwh == pytest.approx(1.0)
    rows = await app.storage.readings(transaction)
    # meterStart and the sample, once each, then StopTransaction's meterStop (the final row)
    assert [(r.wh, r.w) for r in rows] == [(5000, 0.0), (5500, 3000.0), (6000, 0.0)]


async def test_refused_cards_get_invalid_or_blocked_and_open_no_session(ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await cp.call("BootNotification", BOOT)
        assert (await cp.call("Authorize", {"idTag": "DEADBEEF"}))["idTagInfo"][
            "status"
        ] == "Invalid"
        assert (await cp.call("Authorize", {"idTag": DISABLED_CARD}))["idTagInfo"][
            "status"
        ] == "Blocked"
        for tag, status in (("DEADBEEF", "Invalid"), (DISABLED_CARD, "Blocked")):
            answer = await cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": iso(clock())},
            )
            assert answer["idTagInfo"]["status"] == status
    assert (await app.storage.list_sessions(station_id=5))[0] == []


async def test_a_faulted_connector_ends_the_session_and_raises_an_alert(ocpp_server):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        transaction = await boot_and_start(cp, app)
        await cp.call(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"},
        )
        assert (await next_of(dashboard, "session_ended"))["session_id"] == transaction
        assert (await next_of(dashboard, "status"))["status"] == "emergencia"
    assert [a.kind for a in await app.storage.list_alerts(station_id=5)] == ["fault"]


@pytest.mark.parametrize(
    "identity, password, protocols, status",
    [
        ("CP-9999", "whatever", ["ocpp1.6"], 404),  # unknown charge point id
        (CP_ID, "not-the-key", ["ocpp1.6"], 401),  # wrong password
        (CP_ID, None, ["ocpp1.6"], 401),  # no credentials
        (CP_ID, "KEY", ["ocpp2.0.1"], 400),  # no ocpp1.6 subprotocol
        (CP_ID, "KEY", [], 400),  # no subprotocol at all
    ],
)
async def test_the_door_refuses_with_an_http_status(
    ocpp_server, identity, password, protocols, status
):
    app = ocpp_server
    password = app.test_key if password == "KEY" else password
    async with connect(base_url(app), "client", 5) as dashboard, ChargePoint() as cp:
        answer = await cp.connect(base_url(app), identity, password, protocols)
        assert answer.get("refused") == status, answer
        assert (await receive_json(dashboard))["type"] == "subscribed"
        assert (await receive_json(dashboard))["charger"]["status"] == "desconectado"
    assert app.core.connected_count() == 0


async def test_with_auth_off_a_known_charge_point_needs_no_password(tmp_path):
    db = tmp_path / "evse.sqlite3"
    storage = await open_storage(db)
    await storage.add_station("Wallbox", 0.5, station_id=5, charge_point_id=CP_ID)
    await storage.close()
    async with running_server(db, demo=False, auth=False) as app, ChargePoint() as cp:
        assert (await cp.connect(base_url(app), CP_ID, None))["connected"] is True
        assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"
        assert (await cp.connect(base_url(app), "CP-0043", None))["refused"] == 404


async def test_bad_messages_get_a_call_error_and_the_connection_keeps_working(ocpp_server):
    """A charger's malformed or misdirected messages: a CALLERROR with an OCPP code, or an
    answer that changes nothing; never a dead connection or a half-written session."""
    app = ocpp_server
    auth = b64encode(f"{CP_ID}:{app.test_key}".encode()).decode()
    async with ws_connect(
        f"{base_url(app)}/ocpp/{CP_ID}",
        subprotocols=["ocpp1.6"],
        additional_headers={"Authorization": f"Basic {auth}"},
    ) as charger:

        async def ask(message) -> list:
            await charger.send(message if isinstance(message, str) else json.dumps(message))
            return json.loads(await asyncio.wait_for(charger.recv(), 10))

        await charger.send("this is not JSON")  # unreadable: no answer, nothing changes
        wrong_type = await ask([2, "1", "MeterValues", {"connectorId": "one", "meterValue": []}])
        assert (
            wrong_type[0] == 4
            and wrong_type[1] == "1"
            and wrong_type[2]
            in ("FormationViolation", "TypeConstraintViolation", "FormatViolation")
        )
        unknown = await ask([2, "2", "FlyToTheMoon", {}])
        assert unknown[0] == 4 and unknown[2] in ("NotImplemented", "NotSupported")
        stranger = await ask(
            [
                2,
                "3",
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": 777,
                    "meterValue": [
                        {
                            "timestamp": iso(server_clock(base_url(app))()),
                            "sampledValue": [{"value": "99999"}],
                        }
                    ],
                },
            ]
        )
        assert stranger == [3, "3", {}]
        stop = await ask(
            [
                2,
                "4",
                "StopTransaction",
                {
                    "transactionId": 777,
                    "meterStop": 99999,
                    "timestamp": iso(server_clock(base_url(app))()),
                },
            ]
        )
        assert stop[0] == 3
        assert (await ask([2, "5", "Heartbeat", {}]))[0] == 3  # still served
    assert (await app.storage.list_sessions(station_id=5))[0] == []


async def test_a_flooding_charge_point_is_slowed_down_by_the_rate_limit_and_every_call_answered(
    tmp_path,
):
    db = tmp_path / "evse.sqlite3"
    storage = await open_storage(db)
    await storage.add_station("Wallbox", 0.5, station_id=5, charge_point_id=CP_ID)
    await storage.close()
    async with running_server(db, demo=False, auth=False, rate_limit=20, rate_burst=5) as app:
        async with ws_connect(f"{base_url(app)}/ocpp/{CP_ID}", subprotocols=["ocpp1.6"]) as charger:
            for k in range(
                10
            ):  # 5 over the burst: read later, not abuse (that is > burst in a row)
                await charger.send(json.dumps([2, str(k), "Heartbeat", {}]))
            answers = [json.loads(await asyncio.wait_for(charger.recv(), 10)) for _ in range(10)]
        assert [a[1] for a in answers] == [str(k) for k in range(10)] and {
            a[0] for a in answers
        } == {3}
        assert app.counters["error:RATE_LIMITED"] >= 1  # the calls over the burst waited their turn


async def test_a_start_replayed_after_a_server_restart_gets_the_open_sessions_transaction(tmp_path):
    db = tmp_path / "evse.sqlite3"
    storage = await open_storage(db)
    await storage.add_station("Wallbox", 0.5, station_id=5, charge_point_id=CP_ID)
    user = await storage.add_user("Ana")
    await storage.add_card(CARD, user.id)
    await storage.close()
    start = {
        "connectorId": 1,
        "idTag": CARD,
        "meterStart": 100,
        "timestamp": "2026-12-03T09:00:00Z",
    }
    async with running_server(db, demo=False, auth=False) as app, ChargePoint() as cp:
        await cp.connect(base_url(app), CP_ID, None)
        transaction = (await cp.call("StartTransaction", start))["transactionId"]
    async with running_server(db, demo=False, auth=False) as app, ChargePoint() as cp:
        await cp.connect(base_url(app), CP_ID, None)
        again = await cp.call("StartTransaction", start)
        assert (again["transactionId"], again["idTagInfo"]["status"]) == (transaction, "Accepted")
        assert [s.id for s in (await app.storage.list_sessions(station_id=5))[0]] == [transaction]


async def test_a_stop_the_database_refused_is_not_accepted_until_its_end_is_stored(ocpp_server):
    """StopTransaction while the database refuses writes: the charge point gets a CALLERROR
    InternalError (it keeps the message and sends it again, OCPP 1.6 §4.10), not an Accepted
    that would make it drop a stop the server never stored (the seed path withholds its ack).
    The dashboards are told at once; the stop sent again is accepted once the end is stored."""
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        transaction = await boot_and_start(cp, app, start_wh=1000)
        await next_of(dashboard, "session_started")
        clock.advance(600)
        await app.storage.flush()
        await app.storage._fetch("PRAGMA query_only = ON")  # every write now fails
        stop = {"transactionId": transaction, "meterStop": 2200, "timestamp": iso(clock())}
        refused = await cp._ask({"call": "StopTransaction", "params": stop})
        assert "result" not in refused and refused["code"] == "InternalError", refused
        assert (await next_of(dashboard, "session_ended"))["kwh"] == pytest.approx(1.2)
        assert (await app.storage.get_session(transaction)).ended_at is None
        again = await cp._ask({"call": "StopTransaction", "params": stop})  # still not stored
        assert again.get("code") == "InternalError", again
        await app.storage._fetch("PRAGMA query_only = OFF")  # the disk is writable again
        await wait_until(lambda: not app.effects.retries, what="the end to be stored")
        accepted = await cp.call("StopTransaction", stop)  # the charge point's next attempt
        assert accepted["idTagInfo"]["status"] == "Accepted"
    record = await app.storage.get_session(transaction)
    assert record.ended_at is not None and record.kwh == pytest.approx(1.2)  # 2200 - 1000 Wh

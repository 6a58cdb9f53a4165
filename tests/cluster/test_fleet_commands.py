"""Every operator command reaches the process serving the charger (server/cluster/): two real
Apps on one real PostgreSQL and one real nats-server, the charger on A, the administrator's
dashboard on B. A max power or tariff set on B bounds and bills A's next readings; a firmware
order from B reaches the charger on A; an OCPP remote start and configuration call from B
reach an `ocpp-rpc` charge point on A and B's dashboard gets its answer; a card disabled or a
station's offline setting turned off on B makes A push a new list to its charger at once. No
process serving the charger: the same CHARGER_OFFLINE as before.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from contextlib import AsyncExitStack

import pytest

from server.keys import hash_station_key, new_station_key
from tests.cluster.test_fleet import CARD, eventually, metrics
from tests.live_server import (
    base_url,
    connect,
    publisher,
    receive_json,
    receive_type,
    running_server,
    send_json,
    server_clock,
)
from tests.ocpp.charge_point import ChargePoint, missing
from tests.server.test_firmware import bundle
from tests.server.test_offline_auth import OTHER_DEMO_UID, verify

_names = itertools.count(1)
CP_ID = "CP-0042"
OCPP_CARD = "04A32B1C"


@pytest.fixture
async def pair(postgres_server, nats_server, tmp_path):
    """Apps A and B on one fresh database and one bus, the same firmware bundle in each
    FIRMWARE_DIR (as docs/deploy-cluster.md asks)."""
    database = postgres_server.create_database(f"fleetcmd{next(_names)}")
    async with AsyncExitStack() as stack:
        apps = []
        for name in "AB":
            (tmp_path / name / "fw").mkdir(parents=True)
            (tmp_path / name / "fw" / "bundle-2.0.0.bin").write_bytes(bundle("2.0.0"))
            apps.append(
                await stack.enter_async_context(
                    running_server(
                        tmp_path / name / "evse.sqlite3",
                        secret_file=tmp_path / "secret.key",
                        database_url=database,
                        nats_url=nats_server.url,
                        server_id=f"cmd-{name}",
                        firmware_dir=tmp_path / name / "fw",
                    )
                )
            )
        yield apps


async def served_by(app, station_id: int) -> None:
    """`app` holds the station and the NATS server knows it answers its commands."""
    await eventually(lambda: station_id in app.fleet.commands)
    await app.fleet.bus.connection.flush(timeout=5)


async def answer_to(dashboard, message: dict) -> dict:
    """Send `message` with a request_id; its answer (a result or an `error`)."""
    await send_json(dashboard, {**message, "request_id": 41})
    async with asyncio.timeout(40):
        while True:
            reply = await receive_json(dashboard)
            if reply.get("request_id") == 41:
                return reply


async def test_max_power_and_tariff_set_on_b_bound_and_bill_the_session_on_a(pair):
    a, b = pair
    charger = await publisher(base_url(a))
    admin = await connect(base_url(b), "client", 1)
    async with charger, admin:
        await receive_type(admin, "init")
        await served_by(a, 1)
        tariff = await answer_to(admin, {"type": "admin_set_tariff", "station_id": 1, "tariff": 3})
        assert tariff["ok"] and tariff["station"]["tariff"] == 3.0
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
        session_id = (await receive_type(charger, "start"))["session_id"]  # billed at 3 per kWh
        await send_json(charger, metrics(session_id, 1000))
        limit = await answer_to(
            admin, {"type": "admin_set_max_power", "station_id": 1, "max_power_w": 7400}
        )
        assert limit["ok"] and limit["station"]["max_power_w"] == 7400.0
        assert a.core.stations[1].max_power_w == 7400.0  # A's core took it before the answer
        server_clock(base_url(a)).advance(60)
        # 200 Wh in 60 s is 12 kW: within the default 22 kW, beyond the 7.4 kW set on B
        await send_json(charger, metrics(session_id, 1200))
        alert = await receive_type(admin, "alert")
        assert alert["kind"] == "energy_anomaly" and "7.4 kW" in alert["message"]
        await send_json(admin, {"type": "stop", "session_id": session_id, "charger_id": 1})
        assert await receive_type(charger, "stop") == {"type": "stop", "session_id": session_id}
        ended = await receive_type(admin, "session_ended")
    bound_kwh = 7400 * (60 + 1) / 3600 / 1000 + 0.002
    assert 0 < ended["kwh"] <= bound_kwh < 0.2  # not the 0.2 kWh the register claims
    assert ended["cost"] == pytest.approx(ended["kwh"] * 3, abs=0.01)


async def test_a_firmware_order_from_b_reaches_the_charger_on_a(pair):
    a, b = pair
    charger = await publisher(base_url(a))
    admin = await connect(base_url(b), "client", 1)
    async with charger, admin:
        await receive_type(admin, "init")
        await served_by(a, 1)
        ordered = await answer_to(
            admin, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        assert ordered["ok"] and ordered["firmware"]["update"]["result"] == "requested"
        order = await receive_type(charger, "update")
        assert (order["version"], order["size"]) == ("2.0.0", len(bundle("2.0.0")))
        await send_json(
            charger, {"type": "update_result", "version": "2.0.0", "result": "installing"}
        )
        pushed = await receive_type(admin, "firmware")  # A's push, relayed to B's dashboard
        while pushed["update"]["result"] != "installing":
            pushed = await receive_type(admin, "firmware")
        # what only the process serving the charger can judge travels back as its refusal
        missing_version = await answer_to(
            admin, {"type": "admin_update_firmware", "station_id": 1, "version": "9.9.9"}
        )
        assert missing_version["code"] == "NOT_FOUND"
    # nobody serves the charger now: the same refusal as on one server
    await eventually(lambda: 1 not in a.fleet.commands)
    async with connect(base_url(b), "client", 1) as admin:
        await receive_type(admin, "init")
        refused = await answer_to(
            admin, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        assert (refused["type"], refused["code"]) == ("error", "CHARGER_OFFLINE")


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
async def test_an_ocpp_remote_start_and_configuration_from_b_reach_the_charge_point_on_a(pair):
    a, b = pair
    key = new_station_key()
    await a.storage.add_station("Wallbox", 0.5, station_id=5, charge_point_id=CP_ID)
    await a.storage.set_station_key_hash(5, hash_station_key(key))
    user = await a.storage.add_user("Ana")
    await a.storage.add_card(OCPP_CARD, user.id)
    admin = await connect(base_url(b), "client", "all")
    async with admin, ChargePoint() as cp:
        await receive_type(admin, "init")
        refused = await answer_to(admin, {"type": "remote_start", "uid": CARD, "station_id": 5})
        assert refused["code"] == "CHARGER_OFFLINE"  # nobody serves it yet
        await cp.connect(base_url(a), CP_ID, key)
        await cp.call("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "W"})
        await served_by(a, 5)
        started = await answer_to(
            admin, {"type": "remote_start", "uid": "04:a3:2b:1c", "station_id": 5}
        )
        assert started == {
            "type": "remote_start_result",
            "station_id": 5,
            "uid": OCPP_CARD,
            "status": "Accepted",
            "request_id": 41,
        }
        assert await cp.wait_received("RemoteStartTransaction") == {
            "idTag": OCPP_CARD,
            "connectorId": 1,
        }
        read = await answer_to(admin, {"type": "admin_ocpp_get_configuration", "station_id": 5})
        assert read["configuration"] == {"MeterValueSampleInterval": "60"}
        changed = await answer_to(
            admin,
            {
                "type": "admin_ocpp_change_configuration",
                "station_id": 5,
                "key": "MeterValueSampleInterval",
                "value": 30,
            },
        )
        assert changed["status"] == "Accepted"
        assert await cp.wait_received("ChangeConfiguration") == {
            "key": "MeterValueSampleInterval",
            "value": "30",
        }
        # the card rules are the charger's process's answer, passed on as its refusal
        await a.storage.set_card_enabled(OCPP_CARD, False)
        disabled = await answer_to(
            admin, {"type": "remote_start", "uid": OCPP_CARD, "station_id": 5}
        )
        assert disabled["code"] == "CARD_DISABLED"


async def test_a_card_disabled_on_b_reaches_the_charger_on_a_at_once(pair):
    a, b = pair
    charger = await connect(base_url(a), "publisher", 1, token=a.demo_key)
    admin = await connect(base_url(b), "client", "all")
    async with charger, admin:
        assert (await receive_json(charger))["type"] == "connected"
        first = await receive_type(charger, "auth_list")
        assert first["cards"] == [OTHER_DEMO_UID, CARD] and first["offline"] is True
        await receive_type(admin, "init")
        await served_by(a, 1)
        disabled = await answer_to(
            admin, {"type": "admin_set_card_enabled", "uid": CARD, "enabled": False}
        )
        assert disabled["ok"]
        listed = await receive_type(charger, "auth_list")  # the 60 s refresh is far off
        assert listed["cards"] == [OTHER_DEMO_UID] and listed["version"] > first["version"]
        assert verify(listed, a.demo_key)
        off = await answer_to(
            admin, {"type": "admin_set_offline_auth", "station_id": 1, "enabled": False}
        )
        assert off["ok"]
        listed = await receive_type(charger, "auth_list")
        assert listed["offline"] is False and verify(listed, a.demo_key)


async def test_a_bad_command_on_the_bus_is_answered_with_a_code_and_the_owner_goes_on(pair):
    a, b = pair
    charger = await publisher(base_url(a))
    async with charger:
        await served_by(a, 1)
        subject = "evse.station.1.command"
        for payload in (b"\xff{", b"[1]", b'{"type":"format_disk"}', b'{"type":7}'):
            answer = await b.fleet.bus.connection.request(subject, payload, timeout=10)
            assert json.loads(answer.data)["error"]["code"] == "INVALID_MESSAGE"
        # a call the owner's own handler refuses: its code, not a traceback
        answer = await b.fleet.bus.request(subject, {"type": "remote_start", "uid": 5}, 10)
        assert answer["error"]["code"] == "INVALID_MESSAGE"
        answer = await b.fleet.bus.request(
            subject, {"type": "admin_update_firmware", "version": ["2.0.0"]}, 10
        )
        assert answer["error"]["code"] == "NOT_FOUND"
        # the owner still serves the charger: a firmware order from B reaches it
        admin = await connect(base_url(b), "client", 1)
        async with admin:
            await receive_type(admin, "init")
            ordered = await answer_to(
                admin, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
            )
            assert ordered["ok"]
            assert (await receive_type(charger, "update"))["version"] == "2.0.0"

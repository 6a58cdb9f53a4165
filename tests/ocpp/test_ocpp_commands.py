"""Calls the server makes to an OCPP charger (issue 12): RemoteStartTransaction from a dashboard,
TriggerMessage(StatusNotification) after a boot, Get/ChangeConfiguration of
MeterValueSampleInterval by an admin; the npm `ocpp-rpc` charge point answers them (schema-checked)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from server.auth import VIEWER, mint_token
from server.keys import hash_station_key, new_station_key
from tests.live_server import _SECRETS, base_url, connect, send_json, server_clock
from tests.ocpp.charge_point import ChargePoint, iso
from tests.ocpp.test_ocpp_endpoint import BOOT, CARD, CP_ID, DISABLED_CARD, next_of, ocpp_server  # noqa: F401


def viewer_token(url: str) -> str:
    return mint_token(_SECRETS[f"ws://{urlsplit(url).netloc}"], "test-viewer", VIEWER)


async def test_remote_start_from_the_dashboard_starts_a_session_for_the_chosen_card(ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await cp.call("BootNotification", BOOT)
        await send_json(dashboard, {"type": "remote_start", "uid": "04:a3:2b:1c", "request_id": 7})
        answer = await next_of(dashboard, "remote_start_result")
        assert answer == {
            "type": "remote_start_result",
            "station_id": 5,
            "uid": CARD,
            "status": "Accepted",
            "request_id": 7,
        }
        assert await cp.wait_received("RemoteStartTransaction") == {"idTag": CARD, "connectorId": 1}
        # the charger starts the transaction it was asked for, under the same card rules
        started = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": CARD, "meterStart": 500, "timestamp": iso(clock())},
        )
        assert started["idTagInfo"]["status"] == "Accepted"
        shown = await next_of(dashboard, "session_started")
        assert (shown["session_id"], shown["user_name"]) == (started["transactionId"], "Ana")


async def test_a_remote_start_the_charger_rejects_opens_no_session(ocpp_server):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await cp.answer("RemoteStartTransaction", {"status": "Rejected"})
        await send_json(dashboard, {"type": "remote_start", "uid": CARD})
        assert (await next_of(dashboard, "remote_start_result"))["status"] == "Rejected"
    assert app.core.stations[5].session is None


@pytest.mark.parametrize(
    "uid, code",
    [(DISABLED_CARD, "CARD_DISABLED"), ("04FFFFFF", "NOT_FOUND"), ("04 A3;", "INVALID_MESSAGE")],
)
async def test_a_remote_start_for_a_card_that_may_not_charge_never_reaches_the_charger(
    ocpp_server, uid, code
):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await send_json(dashboard, {"type": "remote_start", "uid": uid})
        assert (await next_of(dashboard, "error"))["code"] == code
        await cp.call("Heartbeat", {})
    assert [m["received"] for m in cp.received if m["received"] == "RemoteStartTransaction"] == []


async def test_a_remote_start_needs_an_operator_and_a_connected_ocpp_charger(ocpp_server):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", 5, token=viewer_token(url)) as viewer:
        await send_json(viewer, {"type": "remote_start", "uid": CARD})
        assert (await next_of(viewer, "error"))["code"] == "FORBIDDEN"
    async with connect(url, "client", 5) as dashboard:  # an admin, but no charger connected
        await send_json(dashboard, {"type": "remote_start", "uid": CARD})
        assert (await next_of(dashboard, "error"))["code"] == "CHARGER_OFFLINE"
    assert app.core.stations[5].session is None


async def test_after_a_boot_and_after_a_reconnect_the_server_asks_for_the_connector_status(
    ocpp_server,
):
    app = ocpp_server
    url = base_url(app)
    for _ in range(2):  # a first boot, then the charger reconnecting (a new connection, a new boot)
        async with ChargePoint() as cp:
            await cp.connect(url, CP_ID, app.test_key)
            await cp.call("BootNotification", BOOT)
            trigger = await cp.wait_received("TriggerMessage")
            assert trigger == {"requestedMessage": "StatusNotification", "connectorId": 1}
            await cp.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            )
            await cp.close()


async def test_an_admin_reads_and_changes_the_meter_value_sample_interval(ocpp_server):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", "all") as admin, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await send_json(
            admin, {"type": "admin_ocpp_get_configuration", "station_id": 5, "request_id": 1}
        )
        read = await next_of(admin, "admin_result")
        assert (read["request_id"], read["configuration"]) == (
            1,
            {"MeterValueSampleInterval": "60"},
        )
        await send_json(
            admin,
            {
                "type": "admin_ocpp_change_configuration",
                "station_id": 5,
                "key": "MeterValueSampleInterval",
                "value": 15,
                "request_id": 2,
            },
        )
        changed = await next_of(admin, "admin_result")
        assert (changed["request_id"], changed["status"]) == (2, "Accepted")
        assert await cp.wait_received("ChangeConfiguration") == {
            "key": "MeterValueSampleInterval",
            "value": "15",
        }
        await send_json(admin, {"type": "admin_ocpp_get_configuration", "station_id": 5})
        assert (await next_of(admin, "admin_result"))["configuration"] == {
            "MeterValueSampleInterval": "15"
        }
        for bad in (
            {"key": "HeartbeatInterval", "value": 5},
            {"key": "MeterValueSampleInterval", "value": 0},
            {"key": "MeterValueSampleInterval", "value": "15"},
        ):
            await send_json(
                admin, {"type": "admin_ocpp_change_configuration", "station_id": 5, **bad}
            )
            assert (await next_of(admin, "error"))["code"] == "INVALID_MESSAGE"
    async with connect(url, "client", 5, token=viewer_token(url)) as viewer:
        await send_json(
            viewer,
            {
                "type": "admin_ocpp_change_configuration",
                "station_id": 5,
                "key": "MeterValueSampleInterval",
                "value": 1,
            },
        )
        assert (await next_of(viewer, "error"))["code"] == "FORBIDDEN"


async def test_an_admin_adds_an_ocpp_station_by_message_and_its_charger_connects(ocpp_server):
    app = ocpp_server
    url = base_url(app)
    async with connect(url, "client", "all") as admin:
        await send_json(
            admin,
            {
                "type": "admin_add_station",
                "name": "Parking",
                "tariff": 0.4,
                "charge_point_id": "CP-7",
                "request_id": 1,
            },
        )
        added = await next_of(admin, "admin_result")
        assert added["station"] == {
            "id": 6,
            "name": "Parking",
            "tariff": 0.4,
            "protocol": "ocpp16",
            "charge_point_id": "CP-7",
            "max_power_w": 22000.0,
            "offline_auth": True,
        }
        for bad, code in (
            ("CP 7", "INVALID_MESSAGE"),
            (7, "INVALID_MESSAGE"),
            ("CP-7", "DUPLICATE"),
            (CP_ID, "DUPLICATE"),
        ):
            await send_json(
                admin,
                {"type": "admin_add_station", "name": "Otra", "tariff": 1, "charge_point_id": bad},
            )
            assert (await next_of(admin, "error"))["code"] == code
    assert [s.id for s in await app.storage.list_stations()] == [5, 6]  # nothing half-added
    key = new_station_key()
    await app.storage.set_station_key_hash(6, hash_station_key(key))
    async with ChargePoint() as cp:
        assert (await cp.connect(url, "CP-7", key))["connected"]
        assert (await cp.call("BootNotification", BOOT))["status"] == "Accepted"


async def test_a_remote_start_on_a_busy_or_faulted_station_never_reaches_the_charger(ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    async with connect(url, "client", 5) as dashboard, ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        started = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": CARD, "meterStart": 0, "timestamp": iso(clock())},
        )
        assert started["idTagInfo"]["status"] == "Accepted"
        await send_json(dashboard, {"type": "remote_start", "uid": CARD})
        assert (await next_of(dashboard, "error"))["code"] == "STATION_BUSY"
        await cp.call(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"},
        )
        await send_json(dashboard, {"type": "remote_start", "uid": CARD})
        assert (await next_of(dashboard, "error"))["code"] == "STATION_FAULT"
        await cp.call("Heartbeat", {})
    assert [m for m in cp.received if m["received"] == "RemoteStartTransaction"] == []

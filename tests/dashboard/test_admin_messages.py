"""Dashboard administration over the WebSocket (admin_* messages) on the real server: each change
is visible where a user notices it (the next tap, the next bill, the lists), and a refused
message changes nothing and leaves the socket working."""

import pytest

from tests.dashboard.helpers import CARD, Charger, http_get, wait_until
from tests.live_server import connect, receive_json, receive_type, send_json


async def dashboard(server_url, station="all"):
    websocket = await connect(server_url, "client", station)
    await receive_type(websocket, "init")
    return websocket


async def ask(websocket, message: dict, request_id=7) -> dict:
    """Send one admin message and return the answer that echoes its request_id."""
    await send_json(websocket, {**message, "request_id": request_id})
    while True:
        answer = await receive_json(websocket)
        if answer.get("request_id") == request_id:
            return answer


async def ok(websocket, message: dict) -> dict:
    answer = await ask(websocket, message)
    assert answer["type"] == "admin_result" and answer["ok"] is True, answer
    assert answer["action"] == message["type"]
    return answer


async def test_new_user_with_a_new_card_can_charge_at_once(live_app, server_url):
    admin = await dashboard(server_url)
    charger = await Charger.connect(server_url)
    try:
        user = (await ok(admin, {"type": "admin_add_user", "name": "  Ana López "}))["user"]
        assert user["name"] == "Ana López"
        card = (
            await ok(admin, {"type": "admin_add_card", "uid": "04:a3:2b:1c", "user_id": user["id"]})
        )["card"]
        assert card == {
            "uid": "04A32B1C",
            "user_id": user["id"],
            "user_name": "Ana López",
            "enabled": True,
        }
        start = await charger.tap("04 A3 2B 1C")
        assert start["type"] == "start" and start["user_name"] == "Ana López"
    finally:
        await charger.close()
        await admin.close()
    assert "Ana López" in [
        u["name"] for u in (await http_get(live_app, "/api/users")).json()["items"]
    ]


async def test_card_disabled_by_the_operator_is_refused_at_the_next_tap_and_can_be_enabled_again(
    live_app, server_url
):
    admin = await dashboard(server_url)
    charger = await Charger.connect(server_url)
    try:
        card = (await ok(admin, {"type": "admin_set_card_enabled", "uid": CARD, "enabled": False}))[
            "card"
        ]
        assert card["enabled"] is False
        refused = await charger.tap()
        assert refused["type"] == "error" and refused["code"] == "CARD_DISABLED"
        await ok(admin, {"type": "admin_set_card_enabled", "uid": CARD.lower(), "enabled": True})
        assert (await charger.tap())["type"] == "start"
    finally:
        await charger.close()
        await admin.close()


async def test_new_tariff_bills_the_next_session(live_app, server_url):
    admin = await dashboard(server_url)
    charger = await Charger.connect(server_url)
    try:
        station = (await ok(admin, {"type": "admin_set_tariff", "station_id": 1, "tariff": 10}))[
            "station"
        ]
        assert station == {
            "id": 1,
            "name": "Estación 1",
            "tariff": 10.0,
            "protocol": "seed",
            "charge_point_id": None,
            "max_power_w": 22000.0,
            "offline_auth": True,
        }
        await charger.start()
        await charger.meter(3600, 60)
        await charger.meter(3600, 60)  # 60 Wh after the baseline
        await charger.stop()
        ended = await receive_type(admin, "session_ended")
        assert ended["kwh"] == 0.06 and ended["cost"] == 0.6
    finally:
        await charger.close()
        await admin.close()
    assert (await http_get(live_app, "/api/stations")).json()["items"][0]["tariff"] == 10.0


async def test_added_station_accepts_its_charger_and_shows_on_every_dashboard(live_app, server_url):
    admin = await dashboard(server_url)
    watcher = await dashboard(server_url)
    try:
        station = (
            await ok(
                admin,
                {"type": "admin_add_station", "name": "Garage", "tariff": 6.5, "station_id": 5},
            )
        )["station"]
        assert station == {
            "id": 5,
            "name": "Garage",
            "tariff": 6.5,
            "protocol": "seed",
            "charge_point_id": None,
            "max_power_w": 22000.0,
            "offline_auth": True,
        }
        assert await receive_type(watcher, "status") == {
            "type": "status",
            "charger_id": 5,
            "status": "desconectado",
        }
        charger = await Charger.connect(server_url, station_id=5)
        await charger.close()
        listed = (await http_get(live_app, "/api/stations")).json()["items"]
        assert [(s["id"], s["name"]) for s in listed] == [(1, "Estación 1"), (5, "Garage")]
        automatic = (await ok(admin, {"type": "admin_add_station", "name": "Street", "tariff": 7}))[
            "station"
        ]
        assert automatic["id"] == 6
    finally:
        await admin.close()
        await watcher.close()


async def test_acknowledging_an_emergency_stores_it_on_the_alert_but_does_not_rearm_the_charger(
    live_app, server_url
):
    admin = await dashboard(server_url)
    other = await dashboard(server_url)
    charger = await Charger.connect(server_url)
    try:
        await charger.start()
        await charger.emergency()
        await receive_type(admin, "emergency")
        [alert] = await wait_until(lambda: live_app.storage.list_alerts(unacknowledged_only=True))
        answer = await ok(admin, {"type": "admin_ack_alert", "station_id": 1})
        assert answer["acknowledged"] == [alert.id]
        seen = await receive_type(other, "alert_acknowledged")
        assert seen == {"type": "alert_acknowledged", "charger_id": 1, "alert_ids": [alert.id]}
        [stored] = await live_app.storage.list_alerts()
        assert stored.acknowledged_at is not None
        assert (await http_get(live_app, "/api/alerts")).json()["items"] == []
        # still latched: only a local reset at the charger clears emergencia
        assert (await http_get(live_app, "/api/stations")).json()["items"][0][
            "status"
        ] == "emergencia"
        refused = await charger.tap()
        assert refused["code"] == "STATION_FAULT"
        again = await ok(admin, {"type": "admin_ack_alert", "alert_id": alert.id})
        assert again["acknowledged"] == []
    finally:
        await charger.close()
        await admin.close()
        await other.close()


async def test_max_power_set_from_the_dashboard_bounds_the_open_session_at_once(
    live_app, server_url
):
    admin = await dashboard(server_url)
    charger = await Charger.connect(server_url)
    try:
        await charger.start()
        await charger.meter(7000, 60)  # the baseline
        answer = await ok(
            admin, {"type": "admin_set_max_power", "station_id": 1, "max_power_w": 3700}
        )
        assert answer["station"]["max_power_w"] == 3700.0
        await charger.meter(7000, 60)  # 7 kW: within the default 22 kW, beyond the new 3.7 kW
        alert = await receive_type(admin, "alert")
        assert alert["kind"] == "energy_anomaly" and "3.7 kW" in alert["message"]
        await charger.stop()
        ended = await receive_type(admin, "session_ended")
        assert 0 < ended["kwh"] <= 3700 * 61 / 3600 / 1000 + 0.002  # not the 0.117 claimed
    finally:
        await charger.close()
        await admin.close()
    assert (await http_get(live_app, "/api/stations")).json()["items"][0]["max_power_w"] == 3700.0


@pytest.mark.parametrize(
    "message, code, reason",
    [
        ({"type": "admin_add_user"}, "INVALID_MESSAGE", "name"),
        ({"type": "admin_add_user", "name": "   "}, "INVALID_MESSAGE", "name"),
        ({"type": "admin_add_user", "name": "x" * 101}, "INVALID_MESSAGE", "100"),
        ({"type": "admin_add_user", "name": "bad\u0000name"}, "INVALID_MESSAGE", "printable"),
        ({"type": "admin_add_user", "name": ["Ana"]}, "INVALID_MESSAGE", "name"),
        (
            {"type": "admin_add_card", "uid": "'; DROP TABLE cards;--", "user_id": 1},
            "INVALID_MESSAGE",
            "uid",
        ),
        (
            {"type": "admin_add_card", "uid": "NEW-CARD", "user_id": "1"},
            "INVALID_MESSAGE",
            "user_id",
        ),
        ({"type": "admin_add_card", "uid": "NEW-CARD", "user_id": 999}, "NOT_FOUND", "999"),
        ({"type": "admin_add_card", "uid": CARD, "user_id": 1}, "DUPLICATE", CARD),
        (
            {"type": "admin_set_card_enabled", "uid": CARD, "enabled": "no"},
            "INVALID_MESSAGE",
            "enabled",
        ),
        (
            {"type": "admin_set_card_enabled", "uid": "NO-SUCH-CARD", "enabled": False},
            "NOT_FOUND",
            "NO-SUCH-CARD",
        ),
        ({"type": "admin_set_tariff", "station_id": 1, "tariff": -1}, "INVALID_MESSAGE", "tariff"),
        (
            {"type": "admin_set_tariff", "station_id": 1, "tariff": True},
            "INVALID_MESSAGE",
            "tariff",
        ),
        (
            {"type": "admin_set_tariff", "station_id": 1, "tariff": float("inf")},
            "INVALID_MESSAGE",
            "tariff",
        ),
        ({"type": "admin_set_tariff", "station_id": 99, "tariff": 5}, "NOT_FOUND", "99"),
        (
            {"type": "admin_set_max_power", "station_id": 1, "max_power_w": 60_000},
            "INVALID_MESSAGE",
            "at most 50000",
        ),
        (
            {"type": "admin_set_max_power", "station_id": 1, "max_power_w": True},
            "INVALID_MESSAGE",
            "max power",
        ),
        (
            {"type": "admin_set_max_power", "station_id": 1, "max_power_w": "7400"},
            "INVALID_MESSAGE",
            "max power",
        ),
        (
            {"type": "admin_set_max_power", "station_id": 1, "max_power_w": 0},
            "INVALID_MESSAGE",
            "above 0",
        ),
        (
            {"type": "admin_set_max_power", "station_id": 99, "max_power_w": 7400},
            "NOT_FOUND",
            "99",
        ),
        (
            {"type": "admin_add_station", "name": "Dup", "tariff": 5, "station_id": 1},
            "DUPLICATE",
            "1",
        ),
        (
            {"type": "admin_add_station", "name": "Neg", "tariff": 5, "station_id": 0},
            "INVALID_MESSAGE",
            "station_id",
        ),
        ({"type": "admin_ack_alert"}, "INVALID_MESSAGE", "alert_id or station_id"),
        ({"type": "admin_ack_alert", "alert_id": 1, "station_id": 1}, "INVALID_MESSAGE", "either"),
        ({"type": "admin_ack_alert", "alert_id": 42}, "NOT_FOUND", "42"),
        ({"type": "admin_ack_alert", "station_id": 42}, "NOT_FOUND", "42"),
    ],
)
async def test_bad_admin_messages_are_refused_with_a_code_and_change_nothing(
    live_app, server_url, message, code, reason
):
    before = (
        await live_app.storage.list_users(),
        await live_app.storage.list_cards(),
        await live_app.storage.list_stations(),
    )
    admin = await dashboard(server_url)
    try:
        await send_json(admin, {**message, "request_id": "r-1"})  # inf goes out as `Infinity`
        answer = await receive_json(admin)
        assert (
            answer["type"] == "error" and answer["code"] == code and answer["request_id"] == "r-1"
        )
        assert reason in answer["message"]
        # the socket still works
        assert (await ok(admin, {"type": "admin_set_card_enabled", "uid": CARD, "enabled": True}))[
            "card"
        ]["enabled"]
    finally:
        await admin.close()
    after = (
        await live_app.storage.list_users(),
        await live_app.storage.list_cards(),
        await live_app.storage.list_stations(),
    )
    assert after == before


@pytest.mark.parametrize("request_id", [True, [1], {"a": 1}, "x" * 65, -1])
async def test_malformed_request_id_is_refused(server_url, request_id):
    admin = await dashboard(server_url)
    try:
        await send_json(admin, {"type": "admin_add_user", "name": "Ana", "request_id": request_id})
        answer = await receive_json(admin)
        assert answer["type"] == "error" and answer["code"] == "INVALID_MESSAGE"
        assert "request_id" in answer["message"]
    finally:
        await admin.close()


async def test_a_charger_cannot_use_admin_messages(live_app, server_url):
    charger = await Charger.connect(server_url)
    try:
        await send_json(charger.websocket, {"type": "admin_add_user", "name": "Mallory"})
        answer = await receive_json(charger.websocket)
        assert answer["type"] == "error" and answer["code"] == "INVALID_MESSAGE"
    finally:
        await charger.close()
    assert "Mallory" not in [u.name for u in await live_app.storage.list_users()]


async def test_station_dashboard_can_administer_too(server_url):
    admin = await dashboard(server_url, "1")
    try:
        assert (await ok(admin, {"type": "admin_add_user", "name": "Ana"}))["user"]["name"] == "Ana"
    finally:
        await admin.close()

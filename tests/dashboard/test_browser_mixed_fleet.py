"""A mixed fleet (issue 12): the real firmware on the MicroPython unix port (seed protocol,
station 1) and an OCPP 1.6J charge point (npm `ocpp-rpc`, station 5) charging at once on one
real server; the overview (Chromium through Playwright) shows both live, and history
(/api/sessions) and the CSV export bill each by its own meter."""

import csv
import io

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from server.keys import hash_station_key, new_station_key
from tests.dashboard.browser import screenshot_path
from tests.dashboard.helpers import http_get
from tests.firmware.mpy import requires_micropython
from tests.live_server import base_url, http_url, server_clock, token_for
from tests.ocpp.charge_point import ChargePoint, iso
from tests.ocpp.test_ocpp_endpoint import BOOT, sample
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(180)]

ESP32_CARD = "04A1B2C3D4E5F6"
OCPP_CARD = "04A32B1C"
CP_ID = "CP-MIXED"


async def test_a_seed_charger_and_an_ocpp_charger_charge_at_once_and_are_billed_each_by_its_meter(
    page, live_app, tmp_path
):
    app = live_app
    url, clock = base_url(app), server_clock(base_url(app))
    esp32_user = (await app.storage.list_users())[0]
    await app.storage.add_card(ESP32_CARD, esp32_user.id)
    ana = await app.storage.add_user("Ana")
    await app.storage.add_card(OCPP_CARD, ana.id)
    await app.storage.add_station("Wallbox OCPP", 0.5, station_id=5, charge_point_id=CP_ID)
    key = new_station_key()
    await app.storage.set_station_key_hash(5, hash_station_key(key))

    firmware = SimCharger(tmp_path, url + "/ws", token=token_for(url, "publisher", 1))
    await firmware.start()
    try:
        async with ChargePoint() as cp:
            await page.goto(http_url(app, "/"))
            await expect(page.locator("#link-state")).to_have_text("En vivo")
            esp32, wallbox = page.get_by_test_id("station-1"), page.get_by_test_id("station-5")

            await firmware.wait_status(lambda s: s["link"])
            wh_before = (await firmware.status())["wh"]
            await firmware.command("tap " + ESP32_CARD)
            esp32_session = (await firmware.wait_status(lambda s: s["state"] == "charging"))[
                "session_id"
            ]

            assert (await cp.connect(url, CP_ID, key))["connected"]
            await cp.call("BootNotification", BOOT)
            started = await cp.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": OCPP_CARD,
                    "meterStart": 40_000,
                    "timestamp": iso(clock()),
                },
            )
            ocpp_session = started["transactionId"]
            await cp.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Charging"},
            )
            clock.advance(600)  # ten minutes at 7.2 kW: 1.2 kWh
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": ocpp_session,
                    "meterValue": sample(clock(), 41_200, w=7200, v=230, a=31.3),
                },
            )

            # both live on the overview at once
            await expect(esp32).to_have_attribute("data-status", "cargando")
            await expect(wallbox).to_have_attribute("data-status", "cargando")
            await expect(esp32.locator('[data-field="user"]')).to_have_text(
                f"Usuario: {esp32_user.name}"
            )
            await expect(wallbox.locator('[data-field="user"]')).to_have_text("Usuario: Ana")
            await expect(wallbox.locator('[data-field="kwh"]')).to_contain_text("1,2")
            await expect(esp32.locator('[data-field="w"]')).to_contain_text("2")
            await page.screenshot(path=screenshot_path("mixed-fleet-overview"))

            clock.advance(300)  # five more minutes at 3.6 kW: 0.3 kWh
            await cp.call(
                "StopTransaction",
                {
                    "transactionId": ocpp_session,
                    "meterStop": 41_500,
                    "timestamp": iso(clock()),
                    "reason": "Local",
                },
            )
            await firmware.command("press stop")
            esp32_wh = (await firmware.wait_status(lambda s: s["state"] == "idle"))["wh"]
            await firmware.wait_status(lambda s: s["outbox"] == 0)
            await expect(esp32).to_have_attribute("data-status", "disponible")
        assert page.console_errors == []
    finally:
        await firmware.stop()

    sessions = {s["id"]: s for s in (await http_get(app, "/api/sessions")).json()["items"]}
    assert (sessions[esp32_session]["station_id"], sessions[esp32_session]["user_name"]) == (
        1,
        esp32_user.name,
    )
    assert (sessions[ocpp_session]["station_id"], sessions[ocpp_session]["user_name"]) == (5, "Ana")
    assert not sessions[esp32_session]["open"] and not sessions[ocpp_session]["open"]
    assert (
        round(sessions[esp32_session]["kwh"] * 1000) == esp32_wh - wh_before > 0
    )  # its PZEM's register
    assert sessions[ocpp_session]["kwh"] == pytest.approx(1.5)  # 41,500 - 40,000 Wh
    assert sessions[ocpp_session]["cost"] == pytest.approx(0.75)
    exported = await http_get(app, "/api/sessions.csv")
    rows = {row[0]: row for row in csv.reader(io.StringIO(exported.body.decode("utf-8-sig")))}
    assert rows[str(esp32_session)][1:3] == ["1", esp32_user.name]
    assert rows[str(ocpp_session)][1:4] == ["5", "Ana", OCPP_CARD]
    assert "1.500" in rows[str(ocpp_session)] and "0.75" in rows[str(ocpp_session)]

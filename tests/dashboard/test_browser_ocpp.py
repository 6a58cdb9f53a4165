"""OCPP stations in a real browser (Debian's Chromium through Playwright) against the real server
(issue 12): the station view's remote start, answered by an independent charge point (npm
`ocpp-rpc`), opens the session the charger then starts; seed stations have no such button."""

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import screenshot_path
from tests.live_server import base_url, http_url, server_clock
from tests.ocpp.charge_point import ChargePoint, iso
from tests.ocpp.test_ocpp_endpoint import BOOT, CARD, CP_ID, ocpp_server  # noqa: F401


async def test_an_operator_starts_an_ocpp_charger_from_the_station_view(page, ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    await app.storage.add_station("Garaje ESP32", 0.3, station_id=6)
    async with ChargePoint() as cp:
        await cp.connect(url, CP_ID, app.test_key)
        await cp.call("BootNotification", BOOT)
        await page.goto(http_url(app, "/#/station/6", token="operator"))
        await expect(page.locator("#link-state")).to_have_text("En vivo")
        await expect(page.locator("h1")).to_have_text("Garaje ESP32")
        await expect(page.get_by_test_id("remote-start")).to_have_count(0)  # a seed station
        await page.goto(http_url(app, "/#/station/5", token="operator"))
        await expect(page.locator("h1")).to_have_text("Wallbox")
        await page.get_by_test_id("remote-start").click()
        await page.get_by_test_id("remote-start-uid").fill("04:a3:2b:1c")
        await page.get_by_test_id("remote-start-send").click()
        assert await cp.wait_received("RemoteStartTransaction") == {"idTag": CARD, "connectorId": 1}
        events = page.get_by_test_id("events")
        await expect(events).to_contain_text(f"El cargador aceptó iniciar con la tarjeta {CARD}")
        started = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": CARD, "meterStart": 0, "timestamp": iso(clock())},
        )
        await expect(page.locator('[data-field="user"]')).to_have_text(
            f"Sesión {started['transactionId']} · Ana"
        )
        await expect(
            page.get_by_test_id("stop")
        ).to_be_visible()  # and no remote start while charging
        await expect(page.get_by_test_id("remote-start")).to_have_count(0)
        await page.screenshot(path=screenshot_path("ocpp-remote-start"))
    assert page.console_errors == []


async def test_a_remote_start_the_charger_rejects_is_shown_as_an_error(page, ocpp_server):
    app = ocpp_server
    async with ChargePoint() as cp:
        await cp.connect(base_url(app), CP_ID, app.test_key)
        await cp.answer("RemoteStartTransaction", {"status": "Rejected"})
        await page.goto(http_url(app, "/#/station/5", token="operator"))
        await page.get_by_test_id("remote-start").click()
        await page.get_by_test_id("remote-start-uid").fill(CARD)
        await page.get_by_test_id("remote-start-send").click()
        await expect(page.get_by_test_id("station-error")).to_have_text(
            f"El cargador rechazó iniciar con la tarjeta {CARD}"
        )
    assert app.core.stations[5].session is None


async def test_an_admin_adds_an_ocpp_station_on_the_cards_and_users_page(page, ocpp_server):
    app = ocpp_server
    await page.goto(http_url(app, "/#/admin"))
    await expect(page.locator("#link-state")).to_have_text("En vivo")
    await expect(
        page.get_by_test_id("station-row-5").locator('[data-field="protocol"]')
    ).to_have_text(f"OCPP 1.6J · {CP_ID}")
    add_station = page.get_by_test_id("add-station")
    await add_station.locator('input[name="name"]').fill("Parking")
    await add_station.locator('input[name="tariff"]').fill("0.4")
    await add_station.locator('input[name="charge_point_id"]').fill("CP-0099")
    await add_station.locator("button").click()
    row = page.get_by_test_id("station-row-6")
    await expect(row.locator('[data-field="protocol"]')).to_have_text("OCPP 1.6J · CP-0099")
    await expect(page.locator(".result.ok")).to_contain_text("stations issue-key 6")
    station = await app.storage.station_by_charge_point("CP-0099")
    assert (station.id, station.name, station.protocol) == (6, "Parking", "ocpp16")
    await add_station.locator('input[name="name"]').fill("Otra")
    await add_station.locator('input[name="charge_point_id"]').fill(
        "CP 1"
    )  # a space: not a charge point id
    await add_station.locator("button").click()
    await expect(page.locator(".result.fail")).to_have_attribute("data-code", "INVALID_MESSAGE")
    await expect(page.get_by_test_id("station-row-7")).to_have_count(0)
    assert page.console_errors == []

"""A station's max power from the backoffice in a real browser (Debian's Chromium through
Playwright) against the real server: the admin types kW in the stations table, the server
stores watts (`admin_set_max_power`) and /api/stations and the running core show it; an
out-of-range value is refused with a sentence naming the allowed range and changes nothing;
English labels; a token that may not administer sees the value but no field, while an admin
whose offline listing fails otherwise (SERVER_ERROR) keeps the field; on a 390 px phone the field
and its button are on screen and usable."""

import sqlite3

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import UI_TIMEOUT_MS, screenshot_path
from tests.dashboard.helpers import http_get
from tests.dashboard.test_admin_messages import ask, dashboard
from tests.live_server import base_url, http_url


async def open_admin(page, app, token: str = "admin"):
    await page.goto(http_url(app, "/", token=token) + "#/admin")
    await expect(page.locator("#link-state")).to_have_attribute("data-state", "open")


async def max_power_of(app, station_id: int) -> float:
    listed = (await http_get(app, "/api/stations")).json()["items"]
    return next(s for s in listed if s["id"] == station_id)["max_power_w"]


def power_cell(page, station_id: int = 1):
    return page.get_by_test_id(f"station-row-{station_id}").locator('[data-field="max-power"]')


async def test_the_admin_sets_7_4_kw_and_the_station_takes_7400_w(page, live_app):
    name = live_app.core.stations[1].name
    await open_admin(page, live_app)
    await expect(page.locator("th").filter(has_text="Potencia máxima (kW)")).to_have_count(1)
    field = power_cell(page).get_by_role("spinbutton", name=f"Potencia máxima de {name} en kW")
    await expect(field).to_have_value("22")  # the default, 22,000 W

    await field.fill("7.4")
    await power_cell(page).get_by_role("button", name="Guardar").click()
    await expect(page.locator(".result.ok")).to_have_text(
        f"Potencia máxima de {name}: 7,40 kW. La sesión abierta se limita desde su próxima lectura."
    )
    assert await max_power_of(live_app, 1) == 7400  # whole watts, not 7400.000000000001
    assert live_app.core.stations[1].max_power_w == 7400  # the running server bills within it
    await expect(power_cell(page)).to_have_attribute("data-watts", "7400")  # re-read from the API
    await expect(power_cell(page).get_by_role("spinbutton")).to_have_value("7.4")

    await page.get_by_role("button", name="English").click()
    await expect(page.locator("th").filter(has_text="Max power (kW)")).to_have_count(1)
    await expect(
        power_cell(page).get_by_role("spinbutton", name=f"Max power of {name} in kW")
    ).to_have_value("7.4")
    await power_cell(page).get_by_role("spinbutton").fill("11")
    await power_cell(page).get_by_role("button", name="Set").click()
    await expect(page.locator(".result.ok")).to_have_text(
        f"Max power of {name} set to 11.00 kW. An open session is bounded by it from its next reading."
    )
    assert await max_power_of(live_app, 1) == 11000
    assert page.console_errors == []


async def test_an_out_of_range_value_is_refused_with_the_allowed_range_and_changes_nothing(
    page, live_app
):
    await open_admin(page, live_app)
    field = power_cell(page).get_by_role("spinbutton")
    for typed in ("60", "0", "-3"):
        await field.fill(typed)
        await power_cell(page).get_by_role("button", name="Guardar").click()
        refusal = page.locator(".result.fail")
        await expect(refusal).to_have_text(
            "La potencia máxima debe ser mayor que 0 kW y como mucho 50 kW."
        )
        await expect(refusal).to_have_attribute("data-code", "INVALID_MESSAGE")
        await expect(refusal).to_have_attribute("title", "INVALID_MESSAGE")
        assert await max_power_of(live_app, 1) == 22000, typed
        assert live_app.core.stations[1].max_power_w == 22000, typed
        if typed == "60":
            await page.screenshot(path=screenshot_path("admin-max-power-refused"), full_page=True)
        # the next refusal must be drawn anew, not found still on the page
        await page.evaluate("() => document.querySelector('.result.fail').className = 'result'")

    await page.get_by_role("button", name="English").click()
    await power_cell(page).get_by_role("spinbutton").fill("50.5")
    await power_cell(page).get_by_role("button", name="Set").click()
    await expect(page.locator(".result.fail")).to_have_text(
        "The max power must be above 0 kW and at most 50 kW."
    )
    assert await max_power_of(live_app, 1) == 22000
    assert page.console_errors == []


async def test_a_token_that_may_not_administer_sees_the_value_but_no_field(page, live_app):
    await open_admin(page, live_app, token="operator")
    await expect(page.locator('.table-wrap:has([data-testid="stations"])')).to_have_attribute(
        "data-offline", "forbidden"
    )  # the server said this token may not administer
    await expect(power_cell(page)).to_have_text("22,00 kW")
    await expect(page.get_by_test_id("max-power-form")).to_have_count(0)
    await expect(page.get_by_test_id("max-power-save")).to_have_count(0)
    assert await max_power_of(live_app, 1) == 22000


async def test_an_admin_whose_offline_listing_fails_still_sets_max_power(page, live_app):
    with sqlite3.connect(live_app.config.db_path) as db:  # behind the server: the listing fails
        db.execute("DROP TABLE auth_lists")
    admin = await dashboard(base_url(live_app))
    try:  # what the page gets: an error that is not FORBIDDEN
        listing = await ask(admin, {"type": "admin_list_offline_auth"})
    finally:
        await admin.close()
    assert listing["type"] == "error" and listing["code"] == "SERVER_ERROR", listing
    await open_admin(page, live_app)
    table = page.locator('.table-wrap:has([data-testid="stations"])')
    await expect(table).to_have_attribute("data-offline", "unknown")  # answered, but not OK
    await expect(page.locator("th").filter(has_text="Autorización sin conexión")).to_have_count(0)
    field = power_cell(page).get_by_role("spinbutton")
    await expect(field).to_have_value("22")
    await field.fill("7.4")
    await power_cell(page).get_by_role("button", name="Guardar").click()
    await expect(page.locator(".result.ok")).to_contain_text("7,40 kW")
    assert await max_power_of(live_app, 1) == 7400
    assert live_app.core.stations[1].max_power_w == 7400
    await expect(power_cell(page)).to_have_attribute("data-watts", "7400")


async def test_on_a_390_px_phone_the_field_is_on_screen_and_usable(browser, live_app):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        page = await context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await open_admin(page, live_app)
        field = power_cell(page).get_by_role("spinbutton")
        save = power_cell(page).get_by_role("button", name="Guardar")
        await field.scroll_into_view_if_needed()
        await expect(field).to_be_visible()
        await expect(save).to_be_visible()
        width = await page.evaluate("() => document.documentElement.clientWidth")
        for control in (field, save, power_cell(page)):
            box = await control.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert (await field.bounding_box())["width"] >= 80  # room to type "7.4"
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await page.screenshot(path=screenshot_path("admin-max-power-390"), full_page=True)

        await field.tap()
        await field.fill("7.4")
        await save.tap()
        await expect(page.locator(".result.ok")).to_contain_text("7,40 kW")
        assert await max_power_of(live_app, 1) == 7400
        assert errors == []
    finally:
        await context.close()

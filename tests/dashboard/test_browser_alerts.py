"""Issue 10 in a real browser (Debian's Chromium through Playwright) against the real server:
the emergency banner across a restart and a local reset, the duplicate-charger banner, and
refused taps shown coalesced."""

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import screenshot_path
from tests.live_server import base_url, http_url, publisher, running_server, send_json
from tests.server.handled import handled

STATION = '[data-testid="station-1"]'
STAYS_STOPPED = "sigue detenido hasta que se rearme en sitio"


async def open_dashboard(page, app):
    await page.goto(http_url(app, "/"))
    await expect(page.locator("#link-state")).to_have_text("En vivo")


async def test_an_emergency_reset_while_the_server_was_down_shows_no_stays_stopped_banner(
    page, tmp_path
):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "emergency", "session_id": None})
            await handled(charger)
    async with running_server(db) as app:  # meanwhile the charger was reset on site
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "status", "state": "idle", "session_id": None})
            await handled(charger)
            await open_dashboard(page, app)
            await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text(
                "Disponible"
            )
            banner = page.get_by_test_id("emergency-1")
            # the unacknowledged alert is still listed, but it no longer says the charger is stopped
            await expect(banner).to_contain_text("PARADA DE EMERGENCIA en Estación 1")
            await expect(banner).to_contain_text("Rearmado en sitio")
            await expect(banner).not_to_contain_text(STAYS_STOPPED)
            await banner.get_by_test_id("acknowledge").click()
            await expect(banner).to_have_count(0)
            assert page.console_errors == []  # checked while the server runs: no reconnect errors


async def test_the_emergency_banner_follows_the_local_reset_without_a_reload(page, live_app):
    await open_dashboard(page, live_app)
    charger = await publisher(base_url(live_app))
    async with charger:
        await send_json(charger, {"type": "emergency", "session_id": None})
        banner = page.get_by_test_id("emergency-1")
        await expect(banner).to_contain_text(STAYS_STOPPED)
        await send_json(charger, {"type": "status", "state": "idle", "session_id": None})
        await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Disponible")
        await expect(banner).to_contain_text("Rearmado en sitio")
        await expect(banner).not_to_contain_text(STAYS_STOPPED)
    assert page.console_errors == []


async def test_two_chargers_on_one_station_show_a_duplicate_charger_banner_in_spanish(
    page, live_app
):
    await open_dashboard(page, live_app)
    url = base_url(live_app)
    chargers = []
    try:
        for _ in range(5):  # four replacements within a minute
            chargers.append(await publisher(url))
            await handled(chargers[-1])
        banner = page.get_by_test_id("emergency-1")
        await expect(banner).to_contain_text("CARGADOR DUPLICADO en Estación 1")
        await expect(banner).to_contain_text("Revise el estacionId")
        await page.screenshot(path=screenshot_path("duplicate-charger-banner"))
        await page.reload()  # listed by /api/alerts for an operator who opens the page later
        await expect(banner).to_contain_text("CARGADOR DUPLICADO")
    finally:
        for charger in chargers:
            await charger.close()
    assert page.console_errors == []


async def test_a_burst_of_refused_taps_shows_once_with_how_many_were_held_back(page, tmp_path):
    now = [1_800_000_000.0]
    async with running_server(tmp_path / "evse.sqlite3", clock=lambda: now[0]) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await page.goto(http_url(app, "/") + "#/station/1")
            await expect(page.locator("#link-state")).to_have_text("En vivo")
            await expect(page.locator('.station-head [data-field="status"]')).to_have_text(
                "Disponible"
            )
            for k in range(30):
                await send_json(charger, {"type": "nfc_scan", "nfc_uid": f"04DEAD{k:04d}"})
            assert len(await handled(charger)) == 30  # every tap answered to the charger
            now[0] += 3
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04BEEF0001"})
            await handled(charger)
            events = page.locator('[data-testid="events"] li.error')
            await expect(events).to_have_count(2)
            await expect(events.first).to_contain_text(
                "Tarjeta desconocida: no está registrada. Y 29 rechazos más desde el anterior."
            )
            assert page.console_errors == []

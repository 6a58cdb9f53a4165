"""Offline authorization in a real browser (Debian's Chromium through Playwright) against the real
server (issue 13): the admin turns a station's "Autorización sin conexión" off and on from the
admin page and its charger (a real websockets client logged in with the station key) gets the
signed list with `offline` false, then true; a refusal is shown in the page; a token that may
not administer sees no such control; a session the charger started offline is shown as
"iniciada sin conexión", and in English when English is chosen."""

import asyncio
import sqlite3

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import screenshot_path
from tests.dashboard.helpers import http_get
from tests.live_server import (
    base_url,
    connect,
    http_url,
    receive_json,
    receive_type,
    send_json,
)

DEMO_UID = "VIRTUAL-1-A4F2E8"  # Juan Pérez's card, in the demo station's list


async def keyed_charger(app):
    """The demo station's charger, logged in with its station key; returns (ws, its list)."""
    ws = await connect(base_url(app), "publisher", 1, token=app.demo_key)
    assert (await receive_json(ws))["type"] == "connected"
    return ws, await receive_type(ws, "auth_list")


async def open_admin(page, app, token: str = "admin"):
    await page.goto(http_url(app, "/", token=token) + "#/admin")
    await expect(page.locator("#link-state")).to_have_attribute("data-state", "open")


async def offline_auth_of(app, station_id: int) -> bool:
    listed = (await http_get(app, "/api/stations")).json()["items"]
    return next(s for s in listed if s["id"] == station_id)["offline_auth"]


async def test_the_admin_turns_offline_authorization_off_and_on_and_the_charger_gets_it(
    page, live_app
):
    ws, first = await keyed_charger(live_app)
    async with ws:
        assert first["offline"] is True and first["version"] == 1
        await open_admin(page, live_app)
        row = page.get_by_test_id("station-row-1")
        offline = row.locator('[data-field="offline"]')
        await expect(page.locator("th").filter(has_text="Autorización sin conexión")).to_have_count(
            1
        )
        await expect(offline.locator('[data-field="offline-state"]')).to_have_text("Activada")
        await expect(offline.locator('[data-field="offline-list"]')).to_have_text(
            "Lista v1 · 2 tarjetas"
        )

        await offline.get_by_test_id("offline-toggle").click()
        off = await receive_type(ws, "auth_list")
        assert off["offline"] is False and off["version"] == 2
        assert off["cards"] == first["cards"]  # the same cards, none of them usable offline
        await expect(offline.locator('[data-field="offline-state"]')).to_have_text("Desactivada")
        await expect(offline.locator('[data-field="offline-list"]')).to_have_text(
            "Lista v2 · 2 tarjetas"
        )
        await expect(page.locator(".result.ok")).to_have_text(
            "Estación 1: autorización sin conexión desactivada."
        )
        await expect(offline.get_by_test_id("offline-toggle")).to_have_text("Activar")
        assert await offline_auth_of(live_app, 1) is False
        await page.screenshot(path=screenshot_path("admin-offline-auth-off"), full_page=True)

        await offline.get_by_test_id("offline-toggle").click()
        on = await receive_type(ws, "auth_list")
        assert on["offline"] is True and on["version"] == 3
        await expect(offline.locator('[data-field="offline-state"]')).to_have_text("Activada")
        await expect(offline.locator('[data-field="offline-list"]')).to_have_text(
            "Lista v3 · 2 tarjetas"
        )
        assert await offline_auth_of(live_app, 1) is True

        await page.get_by_role("button", name="English").click()
        await expect(page.locator("th").filter(has_text="Offline authorization")).to_have_count(1)
        await expect(offline.locator('[data-field="offline-state"]')).to_have_text("On")
        await expect(offline.locator('[data-field="offline-list"]')).to_have_text(
            "List v3 · 2 cards"
        )
        await expect(offline.get_by_test_id("offline-toggle")).to_have_text("Turn off")
    assert page.console_errors == []


async def test_a_change_for_a_charger_away_is_shown_pending_and_a_refusal_in_the_page(
    page, live_app, tmp_path
):
    ws, _ = await keyed_charger(live_app)  # list v1 signed, then the charger goes away
    await ws.close()
    async with asyncio.timeout(10):
        while live_app.hub.has_publisher(1):
            await asyncio.sleep(0.01)
    await live_app.storage.add_station("Garage", 6.0, station_id=2)  # no station key
    live_app.core.add_station(2, "Garage", 6.0)
    await open_admin(page, live_app)
    station = page.get_by_test_id("station-row-1").locator('[data-field="offline"]')
    await station.get_by_test_id("offline-toggle").click()
    await expect(station.locator('[data-field="offline-state"]')).to_have_text("Desactivada")
    # nothing signed while the charger is away: it gets the change when it connects
    await expect(station.locator('[data-field="offline-list"]')).to_have_text(
        "Lista v1 · 2 tarjetas (el cargador recibirá el cambio al conectarse)"
    )
    ws, listed = await keyed_charger(live_app)
    async with ws:
        assert listed["offline"] is False and listed["version"] == 2
    garage = page.get_by_test_id("station-row-2").locator('[data-field="offline"]')
    await expect(garage.locator('[data-field="offline-list"]')).to_contain_text(
        "Sin clave de estación"
    )
    # the station is removed behind the page's back: the server refuses, the page says why
    with sqlite3.connect(tmp_path / "evse.sqlite3") as db:
        db.execute("DELETE FROM stations WHERE id = 2")
    await garage.get_by_test_id("offline-toggle").click()
    await expect(page.locator(".result.fail")).to_have_text("La estación 2 no existe.")
    await expect(page.locator(".result.fail")).to_have_attribute("data-code", "NOT_FOUND")
    assert page.console_errors == []


async def test_a_token_that_may_not_administer_sees_no_offline_control(page, live_app):
    await open_admin(page, live_app, token="operator")
    stations = page.locator('[data-testid="stations"]')
    await expect(stations).to_be_visible()  # the rest of the page is there
    # the server refused the listing (FORBIDDEN): no column, no switch
    await expect(page.locator('.table-wrap:has([data-testid="stations"])')).to_have_attribute(
        "data-offline", "forbidden"
    )
    await expect(page.locator('[data-field="offline"]')).to_have_count(0)
    await expect(page.get_by_test_id("offline-toggle")).to_have_count(0)
    await expect(page.locator("th").filter(has_text="Autorización sin conexión")).to_have_count(0)
    assert await offline_auth_of(live_app, 1) is True


async def test_a_session_started_offline_is_shown_so_in_spanish_and_in_english(page, live_app):
    await page.goto(http_url(live_app, "/") + "#/station/1")
    await expect(page.locator("#link-state")).to_have_text("En vivo")
    ws, listed = await keyed_charger(live_app)
    async with ws:
        await send_json(
            ws,
            {
                "type": "offline_start",
                "local_id": 0x80000123,
                "uid": DEMO_UID,
                "version": listed["version"],
                "wh": 1000,
            },
        )
        start = await receive_type(ws, "start")
        assert start["local_id"] == 0x80000123
        session = start["session_id"]
        events = page.get_by_test_id("events")
        await expect(events).to_contain_text(
            f"Sesión {session} iniciada sin conexión por Juan Pérez (informada al reconectar)"
        )
        await page.screenshot(path=screenshot_path("station-offline-start"))
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_test_id("events")).to_contain_text(
            f"Session {session} started offline by Juan Pérez (reported on reconnect)"
        )
    assert page.console_errors == []

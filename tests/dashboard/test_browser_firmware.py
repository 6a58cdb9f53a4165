"""Over-the-air updates in a real browser (Debian's Chromium through Playwright) against the real
server (issue 13): an admin asks for an update from the station view ("Actualizar firmware"),
the charger (a real websockets client) gets the order and reports its outcome, which the page
shows in Spanish and in English; an operator's page shows no firmware panel."""

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import screenshot_path
from tests.live_server import base_url, http_url, publisher, receive_type, running_server, send_json
from tests.server.test_firmware import bundle


async def test_an_admin_updates_a_charger_from_the_station_view(page, tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "bundle-2.0.0.bin").write_bytes(bundle("2.0.0"))
    (fw / "bundle-1.9.0.bin").write_bytes(bundle("1.9.0"))
    async with running_server(tmp_path / "evse.sqlite3", firmware_dir=fw) as app:
        async with await publisher(base_url(app)) as charger:
            await send_json(
                charger,
                {"type": "status", "state": "idle", "session_id": None, "wh": 1, "fw": "1.0.0"},
            )
            await page.goto(http_url(app, "/#/station/1"))
            panel = page.get_by_test_id("firmware")
            await expect(panel.locator('[data-field="fw"]')).to_have_text("Versión en uso: 1.0.0")
            await expect(page.get_by_test_id("firmware-version")).to_have_value(
                "2.0.0"
            )  # the newest
            await page.get_by_test_id("firmware-update").click()
            assert (await receive_type(charger, "update"))["version"] == "2.0.0"
            await expect(panel.locator(".result.ok")).to_contain_text(
                "Actualización a 2.0.0 pedida"
            )
            await send_json(
                charger,
                {
                    "type": "update_result",
                    "version": "2.0.0",
                    "result": "refused",
                    "code": "HASH_MISMATCH",
                    "fw": "1.0.0",
                },
            )
            await expect(panel.locator('[data-field="fw-update"]')).to_have_text(
                "Última actualización: 2.0.0, rechazada: el archivo descargado no coincide"
            )
            await expect(page.get_by_test_id("events")).to_contain_text("Firmware 2.0.0: rechazada")
            await page.get_by_test_id("firmware-update").click()
            await receive_type(charger, "update")
            await send_json(
                charger,
                {"type": "update_result", "version": "2.0.0", "result": "updated", "fw": "2.0.0"},
            )
            await expect(panel.locator('[data-field="fw"]')).to_have_text("Versión en uso: 2.0.0")
            await expect(panel.locator('[data-field="fw-update"]')).to_have_text(
                "Última actualización: 2.0.0, instalada y en línea"
            )
            await page.screenshot(path=screenshot_path("firmware-update"))
            await page.get_by_role("button", name="English").click()
            await expect(panel.locator('[data-field="fw"]')).to_have_text("Running version: 2.0.0")
            await expect(page.get_by_test_id("firmware-update")).to_have_text("Update firmware")
        await page.goto(http_url(app, "/#/station/1", token="operator"))
        await expect(page.locator("#link-state")).to_have_text("Live")
        await expect(page.get_by_test_id("firmware")).to_be_hidden()
        assert page.console_errors == []  # (checked while the server runs: its stop is no error)

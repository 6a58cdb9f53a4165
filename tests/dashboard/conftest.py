"""Fixtures of the browser tests: one Chromium per test (Debian's, launched by Playwright), a
page that records console errors, and the simulated charger. The server is the shared
`live_app` fixture of tests/conftest.py."""

import pytest

from tests.dashboard.browser import UI_TIMEOUT_MS, Simulator, chromium


@pytest.fixture
async def browser():
    async with chromium() as launched:
        yield launched


class ConsoleErrors(list):
    """console.error messages and uncaught exceptions of a page."""


@pytest.fixture
async def page(browser):
    context = await browser.new_context(
        viewport={"width": 1100, "height": 850}, accept_downloads=True
    )
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors = ConsoleErrors()
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.console_errors = errors
    try:
        yield page
    finally:
        await context.close()


@pytest.fixture
async def simulator(server_url):
    started = []

    async def start(station_id: int = 1, *extra: str) -> Simulator:
        started.append(await Simulator.start(server_url, station_id, *extra))
        return started[-1]

    try:
        yield start
    finally:
        for running in started:
            await running.close()

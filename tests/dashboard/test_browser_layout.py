"""Issue 11, layout: every view at 390 and 1280 px in Spanish and in English (and at 320 and 1920 px in
Spanish), with 6-digit kWh and cost values, long names and an alert banner; no two visible text
boxes overlap (text nodes and the labels drawn on charts) and nothing is cut off horizontally.
One real server and one Chromium for the whole module; one page per width and language, the
views reached by changing the URL's fragment. Screenshots land in test-artifacts/."""

import pytest
import pytest_asyncio

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from tests.dashboard.browser import UI_TIMEOUT_MS, chromium, screenshot_path
from tests.dashboard.helpers import Charger
from tests.dashboard.layout import describe, measure
from tests.live_server import base_url, http_url, running_server, send_json

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG_NAME = "Estacionamiento subterráneo norte, nivel 2"
LONG_USER = "María Fernanda Rodríguez-Echeverría"
SECOND_CARD = "04AABBCCDD"
HOURS = 5700  # at 22 kW: a six-digit kWh (125 400 kWh) and cost (877 800 at 7.00/kWh)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    """A server with big numbers everywhere: station 1 charging for 5700 h, station 2 (long
    name) with a closed session of a long-named user and an emergency, a history of
    six-digit sessions."""
    db = tmp_path_factory.mktemp("layout") / "evse.sqlite3"
    async with running_server(db) as app:
        storage = app.storage
        await storage.add_station(LONG_NAME, 7.0, station_id=2)
        app.core.add_station(2, LONG_NAME, 7.0)
        user = await storage.add_user(LONG_USER)
        await storage.add_card(SECOND_CARD, user.id)
        url = base_url(app)
        first = await Charger.connect(url, 1)
        await first.start()
        await first.meter(21900.0, 60)  # the first reading is the register's baseline
        await first.meter(21900.0, HOURS * 3600)
        await first.meter(21950.0, 60)
        second = await Charger.connect(url, 2)
        closed = await second.start(SECOND_CARD)
        for _ in range(4):
            await second.meter(21000.0, 900)
        second.wh += 300  # the final reading the stop carries
        second.clock.advance(60)
        await send_json(
            second.websocket,
            {"type": "stop", "session_id": closed, "wh": second.wh, "ts": second.ts + 60},
        )
        await send_json(second.websocket, {"type": "emergency", "session_id": None})
        user_id = (await storage.find_card(SECOND_CARD)).user_id
        for n in range(3):
            started = 1_736_500_000 + n * 86_400
            sid = await storage.create_session(2, user_id, SECOND_CARD, started, 7.0, {})
            await storage.end_session(
                sid, started + 3_600 * 999, 123_456.789 + n, 864_197.52 + n, "emergency", {}
            )
        try:
            yield {"app": app, "closed": closed}
        finally:
            await first.close()
            await second.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    async with chromium() as launched:
        yield launched


async def open_page(browser, app, width: int, language: str):
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, is_mobile=width < 600, has_touch=width < 600
    )
    await context.add_init_script(f"localStorage.setItem('evse-dashboard-lang', '{language}')")
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.console_errors = errors
    await page.goto(http_url(app, "/"))
    await expect(page.locator("#link-state")).to_have_attribute("data-state", "open")
    return context, page


def views(closed: int):
    """(name, fragment, what shows the view is drawn with its data)."""
    return [
        ("overview", "/", '[data-testid="station-1"] [data-field="kwh"]'),
        ("station", "/station/1", '[data-testid="power-chart"][data-boxes]'),
        ("station-ended", "/station/2", '[data-testid="no-events"]'),
        ("history", "/history", '[data-testid="totals"]'),
        ("session", f"/session/{closed}", '[data-testid="session-chart"][data-boxes]'),
        ("admin", "/admin", '[data-testid="stations"]'),
    ]


# 390 and 1280 px in both languages; the extremes (320, 1920) in Spanish, the longer texts
@pytest.mark.parametrize(
    "width, language",
    [(390, "es"), (390, "en"), (1280, "es"), (1280, "en"), (320, "es"), (1920, "es")],
)
async def test_no_text_overlaps_or_is_cut_off_on_any_view(browser, world, width, language):
    app = world["app"]
    context, page = await open_page(browser, app, width, language)
    problems = []
    try:
        await expect(page.get_by_test_id("emergency-2")).to_be_visible()
        for name, fragment, ready in views(world["closed"]):
            await page.evaluate("(hash) => { window.location.hash = hash; }", fragment)
            await page.locator(ready).first.wait_for(state="attached")
            await page.wait_for_timeout(50)  # one frame for layout after the last render
            report = await measure(page)
            assert report["count"] > 10, f"{name}: almost no text measured"
            await page.screenshot(
                path=screenshot_path(f"layout-{name}-{width}-{language}"), full_page=True
            )
            if report["overlaps"] or report["cut"] or report["overflow"] > 0:
                problems.append(f"{name} at {width}px ({language}): {describe(report)}")
        assert page.console_errors == []
    finally:
        await context.close()
    assert not problems, "\n".join(problems)

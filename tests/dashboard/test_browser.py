"""The dashboard in a real browser (Debian's Chromium through Playwright) against the real
server, with the CPython simulated charger as a subprocess: what an operator sees and does."""

import csv
import io
import re

import pytest

expect = pytest.importorskip(
    "playwright.async_api", reason="the playwright package is not installed"
).expect

from server.app import App
from server.config import Config
from tests.dashboard.browser import screenshot_path
from tests.dashboard.helpers import CARD, Charger, http_get
from tests.live_server import connect, http_url, receive_type, running_server, send_json

STATION = '[data-testid="station-1"]'


async def open_dashboard(page, app, route: str = "/"):
    await page.goto(http_url(app, "/") + ("" if route == "/" else f"#{route}"))
    await expect(page.locator("#link-state")).to_have_text("En vivo")


def es_kwh(kwh: float) -> str:
    """kWh as the Spanish page shows it (below 1000: no thousands separator)."""
    return f"{kwh:.3f}".replace(".", ",") + " kWh"


async def number_in(page, selector: str) -> float:
    """A number the Spanish page shows ('1.234,567 kWh' -> 1234.567)."""
    text = await page.locator(selector).inner_text()
    return float(re.sub(r"[^0-9,]", "", text).replace(",", "."))


async def wait_for_growth(page, selector: str, above: float) -> float:
    await page.wait_for_function(
        "([selector, above]) => parseFloat(document.querySelector(selector).textContent.replace(/[^0-9,]/g, '').replace(',', '.')) > above",
        arg=[selector, above],
    )
    return await number_in(page, selector)


async def test_overview_loads_without_console_errors_and_shows_every_station(page, live_app):
    await live_app.storage.add_station("Garage", 6.0, station_id=2)
    live_app.core.add_station(2, "Garage", 6.0)
    await open_dashboard(page, live_app)
    card = page.locator(STATION)
    await expect(card.locator('[data-field="status"]')).to_have_text("Desconectado")
    await expect(card).to_contain_text("Estación 1")
    await expect(page.locator('[data-testid="station-2"]')).to_contain_text("Garage")
    assert page.console_errors == []


async def test_a_tap_shows_a_live_session_growing_and_stop_puts_it_in_the_history(
    page, live_app, simulator
):
    await open_dashboard(page, live_app)
    charger = await simulator(1)
    await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Disponible")
    await charger.command(f"tap {CARD}")
    session_id = int(re.search(r"session_id=(\d+)", await charger.wait_for(r"<- start")).group(1))

    card = page.locator(STATION)
    await expect(card.locator('[data-field="status"]')).to_have_text("Cargando")
    await expect(card.locator('[data-field="user"]')).to_contain_text("Juan Pérez")
    kwh = await wait_for_growth(page, f'{STATION} [data-field="kwh"]', 0.0)
    await expect(card.locator('[data-field="w"]')).to_contain_text("kW")
    await page.screenshot(path=screenshot_path("overview-live"))

    await card.click()
    figures = '[data-testid="live-figures"]'
    await expect(page.locator(f'{figures} [data-field="v"]')).to_contain_text(" V")
    kwh = await wait_for_growth(page, f'{figures} [data-field="kwh"]', kwh)
    cost = await number_in(page, f'{figures} [data-field="cost"]')
    await wait_for_growth(page, f'{figures} [data-field="cost"]', cost)
    await expect(page.locator('[data-testid="events"]')).to_contain_text(
        f"Sesión {session_id} iniciada por Juan Pérez"
    )
    await page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=\"power-chart\"]').dataset.points) >= 3"
    )
    await page.screenshot(path=screenshot_path("station-live"), full_page=True)

    await page.get_by_test_id("stop").click()
    await page.get_by_test_id("confirm-stop").click()
    await charger.wait_for(rf"<- stop session_id={session_id}")
    await expect(page.locator('[data-testid="events"]')).to_contain_text(
        f"Sesión {session_id} terminada"
    )
    await expect(page.locator('[data-field="status"]').first).to_have_text("Disponible")
    await expect(page.get_by_test_id("stop")).to_have_count(0)

    await page.click('a[data-nav="history"]')
    row = page.get_by_test_id(f"session-row-{session_id}")
    await expect(row).to_contain_text("Juan Pérez")
    await expect(row.locator('[data-field="end_reason"]')).to_have_text("Detenida desde el panel")
    stored = await live_app.storage.get_session(session_id)
    await expect(row.locator('[data-field="kwh"]')).to_have_text(es_kwh(stored.kwh))
    await expect(page.get_by_test_id("totals")).to_contain_text("Total de 1 sesión")

    async with page.expect_download() as download_info:
        await page.get_by_test_id("csv").click()
    download = await download_info.value
    with open(await download.path(), encoding="utf-8-sig") as exported:
        rows = list(csv.DictReader(io.StringIO(exported.read())))
    assert [(int(r["session_id"]), r["user"], r["end_reason"]) for r in rows] == [
        (session_id, "Juan Pérez", "remote_stop")
    ]

    await row.locator("a").click()
    await expect(page.locator('[data-testid="session-figures"] [data-field="kwh"]')).to_have_text(
        es_kwh(stored.kwh)
    )
    readings = len((await http_get(live_app, f"/api/sessions/{session_id}")).json()["readings"])
    assert readings >= 3
    await expect(page.get_by_test_id("session-chart")).to_have_attribute(
        "data-points", str(2 * readings + 1)
    )  # + the billed end
    await page.screenshot(path=screenshot_path("session-curve"), full_page=True)
    assert page.console_errors == []


async def test_emergency_banner_stays_until_an_operator_acknowledges_it(page, live_app, simulator):
    await open_dashboard(page, live_app)
    charger = await simulator(1)
    await charger.command(f"tap {CARD}")
    await charger.wait_for(r"started session_id")
    await charger.command("emergency")
    banner = page.get_by_test_id("emergency-1")
    await expect(banner).to_contain_text("PARADA DE EMERGENCIA en Estación 1")
    await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Emergencia")

    await page.reload()  # still there for an operator who opens the page later
    await expect(banner).to_be_visible()
    await page.screenshot(path=screenshot_path("emergency-banner"))
    await banner.get_by_test_id("acknowledge").click()
    await expect(banner).to_have_count(0)
    [alert] = await live_app.storage.list_alerts()
    assert alert.acknowledged_at is not None
    # acknowledging does not re-arm the charger
    await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Emergencia")
    assert page.console_errors == []


async def test_a_charger_that_drops_off_shows_desconectado_and_stop_says_esp32_no_conectado(
    page, live_app, simulator
):
    await open_dashboard(page, live_app, "/station/1")
    charger = await simulator(1)
    await charger.command(f"tap {CARD}")
    await charger.wait_for(r"started session_id")
    status = page.locator('.station-head [data-field="status"]')
    await expect(status).to_have_text("Cargando")
    await charger.command("drop")  # WiFi lost: TCP cut without a closing handshake
    await expect(status).to_have_text("Desconectado")
    # the session stays open, but its figures are the last known ones: greyed, not live
    await expect(page.get_by_test_id("live-figures")).to_have_class(re.compile(r"\bstale\b"))
    await page.get_by_test_id("stop").click()
    await page.get_by_test_id("confirm-stop").click()
    await expect(page.get_by_test_id("station-error")).to_contain_text("ESP32 no conectado")
    await page.click('a[data-nav="overview"]')
    await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Desconectado")
    assert page.console_errors == []


async def test_a_card_disabled_in_the_page_is_refused_at_the_next_tap(page, live_app, simulator):
    await open_dashboard(page, live_app, "/admin")
    row = page.get_by_test_id(f"card-{CARD}")
    await expect(row.locator('[data-field="state"]')).to_have_text("Habilitada")
    await row.get_by_test_id("toggle").click()
    await expect(row.locator('[data-field="state"]')).to_have_text("Deshabilitada")
    charger = await simulator(1)
    await charger.command(f"tap {CARD}")
    await charger.wait_for(r"<- error .*CARD_DISABLED")
    # same document (the token already sits in this tab's sessionStorage): only the fragment changes
    await page.goto(http_url(live_app, "/#/station/1", token=None))
    await expect(page.get_by_test_id("events")).to_contain_text(
        "Tarjeta deshabilitada: un operador la desactivó."
    )
    await expect(page.get_by_test_id("events")).not_to_contain_text(
        "CARD_DISABLED"
    )  # a sentence, not a code
    assert page.console_errors == []


async def test_a_station_added_from_another_dashboard_appears_on_the_overview_with_its_name(
    page, live_app, server_url
):
    await open_dashboard(page, live_app)
    admin = await connect(server_url, "client", "all")
    try:
        await receive_type(admin, "init")
        await send_json(
            admin, {"type": "admin_add_station", "name": "Garage", "tariff": 6.5, "station_id": 3}
        )
        assert (await receive_type(admin, "admin_result"))["station"]["id"] == 3
    finally:
        await admin.close()
    garage = page.get_by_test_id("station-3")
    await expect(garage).to_contain_text("Garage")
    await expect(garage.locator('[data-field="status"]')).to_have_text("Desconectado")
    assert page.console_errors == []


async def test_operator_adds_a_user_a_card_a_station_and_a_tariff_from_the_page(page, live_app):
    await open_dashboard(page, live_app, "/admin")
    add_user = page.get_by_test_id("add-user")
    await add_user.locator('input[name="name"]').fill("Ana López")
    await add_user.locator("button").click()
    await expect(page.get_by_test_id("users")).to_contain_text("Ana López")
    add_card = page.get_by_test_id("add-card")
    await add_card.locator('input[name="uid"]').fill("04:a3:2b:1c")
    await add_card.locator("select").select_option(label="Ana López (#2)")
    await add_card.locator("button").click()
    await expect(page.get_by_test_id("card-04A32B1C")).to_contain_text("Ana López")
    await add_card.locator('input[name="uid"]').fill("04:a3:2b:1c")
    await add_card.locator("button").click()
    await expect(page.locator(".result.fail")).to_have_text("La tarjeta 04A32B1C ya existe.")

    add_station = page.get_by_test_id("add-station")
    await add_station.locator('input[name="name"]').fill("Garage")
    await add_station.locator('input[name="tariff"]').fill("6.5")
    await add_station.locator("button").click()
    garage = page.get_by_test_id("station-row-2")
    await expect(garage.locator('[data-field="tariff"]')).to_have_text("$6,50/kWh")
    await garage.locator('input[name="tariff"]').fill("8")
    # the tariff's button (the row also has the max power's "Guardar" and the offline switch)
    await (
        garage.locator('form:has(input[name="tariff"])')
        .get_by_role("button", name="Guardar")
        .click()
    )
    await expect(garage.locator('[data-field="tariff"]')).to_have_text("$8,00/kWh")
    assert (await live_app.storage.get_station(2)).tariff == 8.0
    await page.screenshot(path=screenshot_path("admin"), full_page=True)
    assert (await live_app.storage.find_card("04A32B1C")).user_name == "Ana López"
    assert page.console_errors == []


async def test_history_filters_by_station_and_pages(page, live_app):
    storage = live_app.storage
    await storage.add_station("Garage", 5.0, station_id=2)
    live_app.core.add_station(2, "Garage", 5.0)
    user_id = (await storage.find_card(CARD)).user_id
    for n in range(30):
        station_id = 1 if n % 3 else 2
        session_id = await storage.create_session(
            station_id, user_id, CARD, 1_736_500_000 + n * 3600, 7.0, {}
        )
        await storage.end_session(
            session_id, 1_736_500_000 + n * 3600 + 900, 1.0, 7.0, "local_stop", {}
        )
    await open_dashboard(page, live_app, "/history")
    await expect(page.get_by_test_id("totals")).to_contain_text("Total de 30 sesiones")
    await expect(page.locator(".pager")).to_contain_text("1–25 de 30")
    await page.get_by_role("button", name="Siguiente →").click()
    await expect(page.locator(".pager")).to_contain_text("26–30 de 30")
    await (
        page.get_by_test_id("history-filters").locator('select[name="station"]').select_option("2")
    )
    await page.get_by_role("button", name="Aplicar").click()
    totals = page.get_by_test_id("totals")
    await expect(totals).to_contain_text("Total de 10 sesiones")
    await expect(totals.locator('[data-field="cost"]')).to_have_text("$70,00")
    await expect(totals.locator('[data-field="duration"]')).to_have_text("2:30:00")
    await expect(totals.locator('[data-field="kwh"]')).to_have_text("10,000 kWh")
    await page.screenshot(path=screenshot_path("history"), full_page=True)
    assert page.console_errors == []


async def test_a_lost_server_is_shown_honestly_and_the_page_reconnects(page, tmp_path):
    async with running_server(tmp_path / "evse.sqlite3") as app:
        port = app.port
        await open_dashboard(page, app)
    await expect(page.get_by_test_id("offline")).to_contain_text("Desconectado del servidor")
    await expect(page.locator("#link-state")).to_have_text("Desconectado")
    await expect(page.locator(f"{STATION}.stale")).to_have_count(1)
    await page.screenshot(path=screenshot_path("overview-offline"))
    config = Config(
        host="127.0.0.1",
        port=port,
        db_path=tmp_path / "evse.sqlite3",
        ping_interval=5.0,
        ping_timeout=5.0,
    )
    restarted = await App.start(config)  # same address: the page's own reconnect must find it
    try:
        await expect(page.locator("#link-state")).to_have_text("En vivo", timeout=30_000)
        await expect(page.get_by_test_id("offline")).to_have_count(0)
        await expect(page.locator(f"{STATION}.stale")).to_have_count(0)
    finally:
        await restarted.stop()
    # while the server was away, the browser logged failed connection attempts (expected)
    assert all("WebSocket" in error or "Failed to load" in error for error in page.console_errors)


@pytest.mark.parametrize("route", ["/", "/station/1", "/history", "/admin"])
async def test_every_view_fits_a_phone_screen(browser, live_app, route):
    context = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = await context.new_page()
        await page.goto(http_url(live_app, "/") + ("" if route == "/" else f"#{route}"))
        await expect(page.locator("#link-state")).to_have_text("En vivo")
        await expect(page.locator("#view h1")).to_be_visible()
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"{route} is {overflow}px wider than a phone"
        if route == "/station/1":
            await page.screenshot(path=screenshot_path("phone-station"), full_page=True)
    finally:
        await context.close()


async def test_a_fault_reported_by_the_charger_raises_the_banner_too(page, live_app, server_url):
    await open_dashboard(page, live_app)
    charger = await Charger.connect(server_url)
    try:
        await send_json(charger.websocket, {"type": "status", "state": "fault", "session_id": None})
        banner = page.get_by_test_id("emergency-1")
        await expect(banner).to_contain_text("FALLA informada por Estación 1")
        await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Emergencia")
        await banner.get_by_test_id("acknowledge").click()
        await expect(banner).to_have_count(0)
    finally:
        await charger.close()
    assert page.console_errors == []


@pytest.mark.parametrize(
    "reason, headline",
    [
        ("meter_failure", "FALLA DEL MEDIDOR en Estación 1"),
        ("offline_limit", "LÍMITE SIN CONEXIÓN alcanzado en Estación 1"),
    ],
)
async def test_a_charger_stopping_for_its_own_fault_shows_what_failed_without_a_reload(
    page, live_app, server_url, reason, headline
):
    await open_dashboard(page, live_app)
    charger = await Charger.connect(server_url)
    try:
        session_id = await charger.start()
        await send_json(
            charger.websocket, {"type": "stop", "session_id": session_id, "reason": reason}
        )
        banner = page.get_by_test_id("emergency-1")
        await expect(banner).to_contain_text(f"{headline} (sesión {session_id})")
        await expect(banner).not_to_contain_text("EMERGENCIA")
        await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Disponible")
        if reason == "meter_failure":
            await page.screenshot(path=screenshot_path("meter-failure-banner"))
        await page.reload()  # listed by /api/alerts for an operator who opens the page later
        await expect(banner).to_contain_text(headline)
        await banner.get_by_test_id("acknowledge").click()
        await expect(banner).to_have_count(0)
    finally:
        await charger.close()
    [alert] = await live_app.storage.list_alerts()
    assert alert.kind == reason and alert.acknowledged_at is not None
    assert page.console_errors == []


async def test_an_energy_anomaly_shows_as_an_energy_warning_never_hiding_an_emergency(
    page, live_app, server_url
):
    await open_dashboard(page, live_app)
    charger = await Charger.connect(server_url)
    try:
        session_id = await charger.start()
        await charger.meter(7000.0, 60)
        charger.wh += 1_000_000  # a register jump no 22 kW station can deliver in a minute
        await charger.meter(7000.0, 60)
        warning = page.get_by_test_id("energy-1")
        await expect(warning).to_contain_text(
            f"ANOMALÍA DE ENERGÍA en Estación 1 (sesión {session_id})"
        )
        await expect(warning).to_have_class(re.compile(r"\benergy\b"))
        await expect(page.get_by_test_id("emergency-1")).to_have_count(0)
        await expect(page.locator(f'{STATION} [data-field="status"]')).to_have_text("Cargando")
        await page.screenshot(path=screenshot_path("energy-anomaly-banner"))
        await charger.emergency()  # an emergency replaces the warning, and a reload keeps it
        await expect(page.get_by_test_id("emergency-1")).to_contain_text("PARADA DE EMERGENCIA")
        await page.reload()
        await expect(page.get_by_test_id("emergency-1")).to_contain_text("PARADA DE EMERGENCIA")
        await expect(warning).to_have_count(0)
    finally:
        await charger.close()
    assert sorted(a.kind for a in await live_app.storage.list_alerts()) == [
        "emergency",
        "energy_anomaly",
    ]
    assert page.console_errors == []


async def test_numbers_are_formatted_for_people(page, live_app):
    await open_dashboard(page, live_app)
    shown = await page.evaluate(
        """async () => {
            const f = await import("/static/format.js");
            return [f.kwh(2.45), f.kwh(0.0004), f.cost(17.15), f.cost(1234.5), f.tariff(7),
                    f.duration(850), f.duration(3725), f.duration(-1), f.power(3572.1), f.power(950.4),
                    f.volts(220.5), f.amps(16.2), f.kwh(null)];
        }"""
    )
    assert shown == [
        "2,450 kWh",
        "0,000 kWh",
        "$17,15",
        "$1234,50",
        "$7,00/kWh",
        "0:14:10",
        "1:02:05",
        "—",
        "3,57 kW",
        "950 W",
        "220,5 V",
        "16,20 A",
        "—",
    ]


async def test_without_a_token_the_page_says_how_to_sign_in_and_shows_no_data(page, live_app):
    await page.goto(http_url(live_app, "/", token=None))
    await expect(page.get_by_test_id("unauthorized")).to_contain_text("necesita un token válido")
    await expect(page.locator("#link-state")).to_have_text("Sin sesión")
    await expect(page.locator(STATION)).to_have_count(0)


async def test_a_viewer_sees_the_session_but_its_stop_is_forbidden_and_charging_goes_on(
    page, live_app, simulator
):
    await page.goto(http_url(live_app, "/", token="viewer") + "#/station/1")
    await expect(page.locator("#link-state")).to_have_text("En vivo")
    charger = await simulator(1)
    await charger.command(f"tap {CARD}")
    await charger.wait_for(r"started session_id")
    status = page.locator('.station-head [data-field="status"]')
    await expect(status).to_have_text("Cargando")
    await page.get_by_test_id("stop").click()
    await page.get_by_test_id("confirm-stop").click()
    await expect(page.get_by_test_id("station-error")).to_contain_text(
        "Su acceso no lo permite: detener pide un token de operador"
    )
    await expect(status).to_have_text("Cargando")
    assert live_app.core.open_session_count() == 1

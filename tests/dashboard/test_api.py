"""The dashboard's HTTP GET API against the real server and a real SQLite file: every endpoint,
its filters, and the 400/404 answers."""

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.dashboard.helpers import CARD, Charger, http_get, wait_until

DAY = 86_400
JAN_10 = datetime(2025, 1, 10, 12, 0, tzinfo=UTC).timestamp()
STATIC_DIR = Path(__file__).resolve().parents[2] / "server" / "static"


async def ended_session(app, session_id):
    async def ended():
        record = await app.storage.get_session(session_id)
        return record if record is not None and record.ended_at is not None else None

    return await wait_until(ended)


async def charge_once(app, server_url, watts=(3600.0, 3600.0, 3600.0)):
    """A whole session on station 1 through the WebSocket: tap, metrics, STOP; returns it ended."""
    charger = await Charger.connect(server_url)
    try:
        session_id = await charger.start()
        for w in watts:
            await charger.meter(w, 60)
        await charger.stop()
        return await ended_session(app, session_id)
    finally:
        await charger.close()


@pytest.fixture
async def history(live_app):
    """Four ended sessions at known times: station 1/2, users Juan/Ana, 10-12 January 2025."""
    storage = live_app.storage
    ana = await storage.add_user("Ana")
    await storage.add_card("ANA-1", ana.id)
    garage = await storage.add_station("Garage", 5.0, station_id=2)
    juan = (await storage.find_card(CARD)).user_id
    rows = [  # station, user, card, start, kwh
        (1, juan, CARD, JAN_10, 2.0),
        (1, ana.id, "ANA-1", JAN_10 + DAY, 3.0),
        (garage.id, ana.id, "ANA-1", JAN_10 + DAY + 600, 4.0),
        (garage.id, juan, CARD, JAN_10 + 2 * DAY, 1.5),
    ]
    ids = []
    for station_id, user_id, card, start, kwh in rows:
        tariff = 7.0 if station_id == 1 else 5.0
        session_id = await storage.create_session(station_id, user_id, card, start, tariff, {})
        await storage.end_session(session_id, start + 1800, kwh, kwh * tariff, "local_stop", {})
        ids.append(session_id)
    return {"ids": ids, "ana": ana.id, "juan": juan, "garage": garage.id}


# ---------------------------------------------------------------- /api/stations


async def test_stations_show_live_status_and_the_open_session(live_app, server_url):
    listed = (await http_get(live_app, "/api/stations")).json()["items"]
    assert [(s["id"], s["name"], s["tariff"], s["status"]) for s in listed] == [
        (1, "Estación 1", 7.0, "desconectado")
    ]
    charger = await Charger.connect(server_url)
    try:
        station = (await http_get(live_app, "/api/stations")).json()["items"][0]
        assert station["status"] == "disponible" and station["session"] is None
        session_id = await charger.start()
        station = (await http_get(live_app, "/api/stations")).json()["items"][0]
        assert station["status"] == "cargando"
        assert station["session"]["session_id"] == session_id
        assert station["session"]["user_name"] == "Juan Pérez"
    finally:
        await charger.close()

    async def offline():
        station = (await http_get(live_app, "/api/stations")).json()["items"][0]
        return station["status"] == "desconectado"

    await wait_until(offline)


# ---------------------------------------------------------------- /api/sessions


async def test_sessions_list_newest_first_with_totals_of_the_whole_selection(live_app, history):
    answer = await http_get(live_app, "/api/sessions?limit=2")
    assert answer.status == 200 and answer.content_type.startswith("application/json")
    page = answer.json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert [item["id"] for item in page["items"]] == [history["ids"][3], history["ids"][2]]
    # totals cover all four sessions, not only the page
    assert page["totals"] == {
        "sessions": 4,
        "kwh": 10.5,
        "cost": 2 * 7 + 3 * 7 + 4 * 5 + 1.5 * 5,
        "duration": 4 * 1800,
    }
    first = page["items"][0]
    assert first["user_name"] == "Juan Pérez" and first["station_id"] == history["garage"]
    assert first["duration"] == 1800 and first["kwh"] == 1.5 and first["cost"] == 7.5
    assert first["open"] is False and first["end_reason"] == "local_stop"


async def test_sessions_pages_walk_through_every_session_once(live_app, history):
    seen = []
    for offset in (0, 1, 2, 3, 4):
        page = (await http_get(live_app, f"/api/sessions?limit=1&offset={offset}")).json()
        seen += [item["id"] for item in page["items"]]
    assert sorted(seen) == sorted(history["ids"])


@pytest.mark.parametrize(
    "query, expected",
    [
        ("station=1", [0, 1]),
        ("station=2", [2, 3]),
        ("user={ana}", [1, 2]),
        ("station=2&user={juan}", [3]),
        ("from=2025-01-11", [1, 2, 3]),
        ("to=2025-01-11", [0, 1, 2]),
        ("from=2025-01-11&to=2025-01-11", [1, 2]),
        ("from={jan11}&to={jan11_noon}", [1]),
        ("from=2025-01-11T00:00:00Z&to=2025-01-11T12:05:00Z", [1]),
        ("station=1&from=2025-01-12", []),
    ],
)
async def test_sessions_filter_by_station_user_and_dates(live_app, history, query, expected):
    jan11 = JAN_10 + DAY - 12 * 3600
    query = query.format(
        ana=history["ana"], juan=history["juan"], jan11=jan11, jan11_noon=jan11 + 12 * 3600 + 1
    )
    page = (await http_get(live_app, f"/api/sessions?{query}")).json()
    assert sorted(item["id"] for item in page["items"]) == sorted(
        history["ids"][i] for i in expected
    )
    assert page["total"] == len(expected) == page["totals"]["sessions"]


@pytest.mark.parametrize(
    "query, reason",
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("station=abc", "station"),
        ("station=0", "station"),
        ("user=1.5", "user"),
        ("from=yesterday", "from"),
        ("to=2025-02-30", "to"),
        ("from=2025-01-12&to=2025-01-10", "from must not be later than to"),
        ("from=nan", "from"),
        ("stationId=1", "unknown parameter 'stationId'"),
        ("station=1&station=2", "given twice"),
    ],
)
async def test_bad_session_filters_answer_400_with_the_reason(live_app, query, reason):
    for path in ("/api/sessions", "/api/sessions.csv"):
        answer = await http_get(live_app, f"{path}?{query}")
        assert answer.status == 400, (path, query)
        body = answer.json()
        assert body["code"] == "BAD_REQUEST" and reason in body["message"]


# ---------------------------------------------------------------- /api/sessions/{id}


async def test_session_detail_has_its_stored_readings_for_the_curve(live_app, server_url):
    record = await charge_once(live_app, server_url, watts=(3000.0, 3600.0, 1200.0))
    answer = await http_get(live_app, f"/api/sessions/{record.id}")
    assert answer.status == 200
    session = answer.json()
    assert session["id"] == record.id and session["user_name"] == "Juan Pérez"
    # the first register value is the session's baseline: 1 min at 3.6 kW + 1 min at 1.2 kW
    assert session["kwh"] == pytest.approx(0.08, abs=1e-3) and session["cost"] == pytest.approx(
        0.56, abs=0.01
    )
    assert [r["w"] for r in session["readings"]] == [3000.0, 3600.0, 1200.0]
    assert [r["kwh"] for r in session["readings"]] == pytest.approx([0.0, 0.06, 0.08], abs=1e-3)
    timestamps = [r["ts"] for r in session["readings"]]
    assert timestamps == sorted(timestamps)


async def test_open_session_detail_includes_readings_not_yet_flushed(live_app, server_url):
    charger = await Charger.connect(server_url)
    try:
        session_id = await charger.start()
        await charger.meter(2000.0, 30)
        await charger.meter(2000.0, 30)

        async def two_readings():
            session = (await http_get(live_app, f"/api/sessions/{session_id}")).json()
            return session if len(session["readings"]) == 2 else None

        session = await wait_until(two_readings)
        assert session["open"] is True and session["ended_at"] is None
    finally:
        await charger.close()


@pytest.mark.parametrize(
    "path", ["/api/sessions/999", "/api/sessions/abc", "/api/sessions/-1", "/api/sessions/1/x"]
)
async def test_unknown_session_ids_answer_404_json(live_app, path):
    answer = await http_get(live_app, path)
    assert answer.status == 404
    assert answer.json()["code"] == "NOT_FOUND"


# ---------------------------------------------------------------- /api/sessions.csv


async def test_csv_download_has_the_filtered_sessions_rows(live_app, history):
    answer = await http_get(live_app, f"/api/sessions.csv?user={history['ana']}")
    assert answer.status == 200 and answer.content_type.startswith("text/csv")
    assert re.match(
        r'attachment; filename="sessions-\d{8}-\d{6}\.csv"', answer.headers["content-disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(answer.body.decode("utf-8-sig"))))
    assert sorted(int(row["session_id"]) for row in rows) == sorted(history["ids"][1:3])
    garage = next(row for row in rows if row["station_id"] == str(history["garage"]))
    assert garage["user"] == "Ana" and garage["kwh"] == "4.000" and garage["cost"] == "20.00"
    assert garage["started_at"] == "2025-01-11T12:10:00+00:00" and garage["duration_s"] == "1800"
    assert garage["duration"] == "0:30:00"


async def test_csv_of_a_live_session_has_its_row(live_app, server_url):
    record = await charge_once(live_app, server_url)
    rows = list(
        csv.DictReader(
            io.StringIO((await http_get(live_app, "/api/sessions.csv")).body.decode("utf-8-sig"))
        )
    )
    assert [(int(r["session_id"]), r["user"], r["kwh"]) for r in rows] == [
        (record.id, "Juan Pérez", f"{record.kwh:.3f}")
    ]


# ---------------------------------------------------------------- lists


async def test_users_cards_and_alerts_are_listed(live_app, history, server_url):
    users = (await http_get(live_app, "/api/users")).json()["items"]
    assert {u["name"] for u in users} == {"Juan Pérez", "Ana"}
    cards = (await http_get(live_app, "/api/cards")).json()["items"]
    assert {(c["uid"], c["user_name"], c["enabled"]) for c in cards} == {
        (CARD, "Juan Pérez", True),
        ("04C0FFEE", "Juan Pérez", True),
        ("ANA-1", "Ana", True),
    }
    assert (await http_get(live_app, "/api/alerts")).json()["items"] == []
    charger = await Charger.connect(server_url)
    try:
        session_id = await charger.start()
        await charger.emergency()

        async def alert_listed():
            return (await http_get(live_app, "/api/alerts")).json()["items"]

        [alert] = await wait_until(alert_listed)
        assert alert["station_id"] == 1 and alert["session_id"] == session_id
        assert alert["kind"] == "emergency" and alert["acknowledged_at"] is None
    finally:
        await charger.close()


@pytest.mark.parametrize("path", ["/api/stations?x=1", "/api/users?limit=5"])
async def test_list_endpoints_refuse_parameters_they_do_not_take(live_app, path):
    answer = await http_get(live_app, path)
    assert answer.status == 400 and "unknown parameter" in answer.json()["message"]


async def test_unknown_api_path_answers_404_json(live_app):
    answer = await http_get(live_app, "/api/nothing-here")
    assert answer.status == 404 and answer.json()["code"] == "NOT_FOUND"


# ---------------------------------------------------------------- pages, health


async def test_dashboard_page_and_its_modules_are_served_with_their_types(live_app):
    page = await http_get(live_app, "/")
    assert page.status == 200 and page.content_type.startswith("text/html")
    assert b'<script type="module" src="/static/app.js">' in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in sorted(p.name for p in STATIC_DIR.iterdir()):
        answer = await http_get(live_app, f"/static/{name}")
        assert answer.status == 200, name
        assert answer.body == (STATIC_DIR / name).read_bytes()
    assert (await http_get(live_app, "/static/app.js")).content_type.startswith("text/javascript")
    assert (await http_get(live_app, "/static/style.css")).content_type.startswith("text/css")


def test_dashboard_needs_nothing_from_the_internet():
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), (
            f"{path.name} loads from the internet"
        )
        assert "@import" not in text and "fonts.googleapis" not in text


@pytest.mark.parametrize(
    "path",
    ["/static/missing.js", "/static/..%2fapi.py", "/static/.hidden", "/static/app.py", "/static/"],
)
async def test_static_serves_only_the_dashboard_files(live_app, path):
    answer = await http_get(live_app, path)
    assert answer.status == 404 and answer.json()["code"] == "NOT_FOUND"


async def test_healthz_answers_ok(live_app):
    answer = await http_get(live_app, "/healthz")
    assert answer.status == 200 and answer.json()["ok"] is True


async def test_a_database_failure_answers_500_json_without_a_traceback(live_app):
    await live_app.storage.close()  # the database is gone (the app's own close is idempotent)
    for path in ("/api/stations", "/api/sessions", "/api/sessions/1", "/api/sessions.csv"):
        answer = await http_get(live_app, path)
        assert answer.status == 500, path
        assert answer.json() == {
            "code": "SERVER_ERROR",
            "message": "internal error; see the server log",
        }

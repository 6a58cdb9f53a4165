"""The CSV download as a spreadsheet opens it, and the page's settings (issue 11), against the
real server and a real SQLite file: UTF-8 with a BOM, `duration` as H:MM:SS like the page,
started_at/ended_at in the `tz` the page passes (its browser's zone), an unknown zone refused
with a code; `/api/settings` tells the page how to show money."""

import asyncio
import csv
import io
from datetime import UTC, datetime

import pytest

from tests.dashboard.helpers import _get, http_get
from tests.live_server import http_url, running_server

START = datetime(2025, 7, 1, 22, 30, tzinfo=UTC).timestamp()  # summer: DST in Madrid


@pytest.fixture
async def one_session(live_app):
    storage = live_app.storage
    user = await storage.add_user("José Pérez")
    await storage.add_card("JOSE-1", user.id)
    session_id = await storage.create_session(1, user.id, "JOSE-1", START, 7.0, {})
    await storage.end_session(session_id, START + 12 * 3600 + 307, 20.633, 144.43, "local_stop", {})
    return session_id


def rows_of(body: bytes) -> list[dict]:
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


async def test_csv_has_a_bom_a_readable_duration_and_utc_offsets_by_default(live_app, one_session):
    answer = await http_get(live_app, "/api/sessions.csv")
    [row] = rows_of(answer.body)
    assert row["user"] == "José Pérez"
    assert (row["started_at"], row["ended_at"]) == (
        "2025-07-01T22:30:00+00:00",
        "2025-07-02T10:35:07+00:00",
    )
    assert (row["duration_s"], row["duration"]) == ("43507", "12:05:07")


@pytest.mark.parametrize(
    "zone, started, ended",
    [
        ("Europe/Madrid", "2025-07-02T00:30:00+02:00", "2025-07-02T12:35:07+02:00"),
        (
            "America/Argentina/Buenos_Aires",
            "2025-07-01T19:30:00-03:00",
            "2025-07-02T07:35:07-03:00",
        ),
        ("UTC", "2025-07-01T22:30:00+00:00", "2025-07-02T10:35:07+00:00"),
    ],
)
async def test_csv_times_are_in_the_zone_the_page_passes(
    live_app, one_session, zone, started, ended
):
    [row] = rows_of((await http_get(live_app, f"/api/sessions.csv?tz={zone}")).body)
    assert (row["started_at"], row["ended_at"], row["duration"]) == (started, ended, "12:05:07")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "x" * 200])
async def test_an_unknown_time_zone_is_a_400_with_a_code(live_app, one_session, zone):
    answer = await http_get(live_app, f"/api/sessions.csv?tz={zone}")
    assert answer.status == 400
    assert answer.json()["code"] == "UNKNOWN_TIME_ZONE"
    assert "unknown time zone" in answer.json()["message"]


async def test_settings_tell_the_page_the_default_currency(live_app):
    answer = await http_get(live_app, "/api/settings")
    assert answer.status == 200
    assert answer.json() == {"currency_symbol": "$", "currency_decimals": 2}


async def test_settings_carry_the_configured_currency(tmp_path):
    async with running_server(
        tmp_path / "evse.sqlite3", currency_symbol="€", currency_decimals=0
    ) as app:
        answer = await http_get(app, "/api/settings")
    assert answer.json() == {"currency_symbol": "€", "currency_decimals": 0}


async def test_settings_need_a_dashboard_token(live_app):
    url = http_url(live_app, "/api/settings", token=None)
    answer = await asyncio.to_thread(_get, url)
    assert answer.status == 401


@pytest.mark.parametrize(
    "query, words", [("station=99", "station 99 not found"), ("user=99", "user 99 not found")]
)
async def test_a_filter_naming_an_unknown_station_or_user_is_a_404(
    live_app, one_session, query, words
):
    for path in ("/api/sessions", "/api/sessions.csv"):
        answer = await http_get(live_app, f"{path}?{query}")
        assert answer.status == 404, (path, answer.body)
        assert answer.json() == {"code": "NOT_FOUND", "message": words}

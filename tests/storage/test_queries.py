"""History and administration queries, demo seeding, alerts and CSV export."""

import csv
import io

import pytest

from server.storage import Duplicate, NotFound, open_storage
from server.storage.demo import seed_demo
from server.storage.export import export_sessions, sessions_to_csv

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


async def sessions_on_two_stations(storage, count=6):
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.add_station("Estación 2", 5.0, station_id=2)
    ana, juan = await storage.add_user("Ana"), await storage.add_user("Juan Pérez")
    ids = []
    for i in range(count):
        user = ana if i % 2 else juan
        ids.append(
            await storage.create_session(1 + i % 2, user.id, f"CARD{i}", T0 + i * 3600, 7.0, {})
        )
    return ids, ana, juan


async def test_sessions_are_paged_newest_first_with_the_total(storage):
    ids, _, _ = await sessions_on_two_stations(storage)
    page, total = await storage.list_sessions(limit=4)
    assert total == 6
    assert [s.id for s in page] == ids[::-1][:4]
    page, total = await storage.list_sessions(limit=4, offset=4)
    assert [s.id for s in page] == ids[::-1][4:] and total == 6


async def test_sessions_are_filtered_by_station_user_and_start_time(storage):
    ids, ana, _ = await sessions_on_two_stations(storage)
    assert [s.id for s in (await storage.list_sessions(station_id=2))[0]] == [
        ids[5],
        ids[3],
        ids[1],
    ]
    assert [s.user_name for s in (await storage.list_sessions(user_id=ana.id))[0]] == ["Ana"] * 3
    window, total = await storage.list_sessions(since=T0 + 3600, until=T0 + 3 * 3600)
    assert [s.id for s in window] == [ids[2], ids[1]] and total == 2
    assert (await storage.list_sessions(station_id=99)) == ([], 0)


async def test_every_history_filter_at_once_pages_the_sessions_they_all_match(storage):
    """Four filters, a limit and an offset: six values, each bound to its own placeholder."""
    ids, ana, _ = await sessions_on_two_stations(storage, count=8)
    page, total = await storage.list_sessions(
        station_id=2, user_id=ana.id, since=T0 + 3600, until=T0 + 7 * 3600, limit=1, offset=1
    )
    assert [s.id for s in page] == [ids[3]] and total == 3  # of ids 5, 3, 1
    totals = await storage.session_totals(
        T0 + 10 * 3600, station_id=2, user_id=ana.id, since=T0 + 3600, until=T0 + 7 * 3600
    )
    assert totals["sessions"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        dict(limit=-1),
        dict(limit=5000),
        dict(offset=-1),
        dict(station_id=0),
        dict(since=float("nan")),
        dict(limit="10"),
    ],
)
async def test_bad_history_filters_are_refused_with_a_clear_message(storage, bad):
    with pytest.raises(ValueError, match="must be"):
        await storage.list_sessions(**bad)


async def test_a_session_remembers_the_tariff_it_started_with(storage):
    ids, _, _ = await sessions_on_two_stations(storage, count=1)
    await storage.set_tariff(1, 9.5)
    assert (await storage.get_station(1)).tariff == 9.5
    assert (await storage.get_session(ids[0])).tariff == 7.0
    assert await storage.get_session(12345) is None


async def test_reference_data_errors_name_what_is_wrong(storage):
    await storage.add_station("S", 7.0, station_id=3)
    with pytest.raises(Duplicate, match="station 3 already exists"):
        await storage.add_station("Other", 7.0, station_id=3)
    with pytest.raises(NotFound, match="station 4 does not exist"):
        await storage.set_tariff(4, 7.0)
    with pytest.raises(ValueError, match="tariff must be at least 0"):
        await storage.set_tariff(3, -0.5)
    with pytest.raises(ValueError, match="tariff must be a finite number"):
        await storage.add_station("S", float("inf"))
    user = await storage.add_user("  Ana  ")
    assert user.name == "Ana"
    await storage.add_card("04:a3:2b:1c", user.id)
    with pytest.raises(Duplicate, match="card 04A32B1C already exists"):
        await storage.add_card("04A32B1C", user.id)
    with pytest.raises(NotFound, match="card FFFF does not exist"):
        await storage.set_card_enabled("ffff", False)
    assert [s.name for s in await storage.list_stations()] == ["S"]


async def test_a_disabled_card_is_still_found_but_marked_disabled(storage):
    user = await storage.add_user("Ana")
    await storage.add_card("04A32B1C", user.id)
    await storage.set_card_enabled("04A32B1C", False)
    card = await storage.find_card("04A32B1C")
    assert (card.user_name, card.enabled) == ("Ana", False)
    assert await storage.find_card("04A32B1D") is None


async def test_the_demo_is_seeded_once_and_only_into_an_empty_database(target, tmp_path):
    storage = await open_storage(target)
    try:
        assert await seed_demo(storage) is True
        assert await seed_demo(storage) is False
        [station] = await storage.list_stations()
        assert (station.id, station.name, station.tariff) == (1, "Estación 1", 7.0)
        card = await storage.find_card("VIRTUAL-1-A4F2E8")
        assert (card.user_name, card.enabled) == ("Juan Pérez", True)
        reader_card = await storage.find_card("04C0FFEE")  # make sim-charger's `tap 04C0FFEE`
        assert (reader_card.user_name, reader_card.enabled) == ("Juan Pérez", True)
        assert len(await storage.list_users()) == 1
    finally:
        await storage.close()
    other = await open_storage(tmp_path / "other.sqlite3")
    try:
        await other.add_user("Operator")
        assert await seed_demo(other) is False
        assert await other.list_stations() == []
    finally:
        await other.close()


async def test_alerts_are_stored_listed_and_acknowledged_once(storage):
    ids, _, _ = await sessions_on_two_stations(storage, count=1)
    first = await storage.add_alert(1, ids[0], "emergency", T0 + 10, "EMERGENCY button")
    second = await storage.add_alert(2, None, "offline", T0 + 20)
    assert [a.id for a in await storage.list_alerts()] == [second, first]
    assert [a.kind for a in await storage.list_alerts(station_id=1)] == ["emergency"]
    assert await storage.acknowledge_alert(first, T0 + 30) is True
    assert await storage.acknowledge_alert(first, T0 + 40) is False
    [still_open] = await storage.list_alerts(unacknowledged_only=True)
    assert still_open.id == second
    [done] = await storage.list_alerts(station_id=1)
    assert (done.acknowledged_at, done.detail, done.session_id) == (
        T0 + 30,
        "EMERGENCY button",
        ids[0],
    )
    with pytest.raises(NotFound, match="alert 999 does not exist"):
        await storage.acknowledge_alert(999, T0)


async def test_csv_export_has_the_documented_columns_and_defuses_spreadsheet_formulas(storage):
    await storage.add_station("S", 7.0, station_id=1)
    user = await storage.add_user('=HYPERLINK("http://evil")')
    sid = await storage.create_session(1, user.id, "CARD1", T0, 7.0, {})
    await storage.end_session(sid, T0 + 90.4, 1.23456, 8.641, "local_stop", {})
    text, count = await export_sessions(storage)
    assert count == 1
    assert text.startswith("\ufeff")
    [row] = list(csv.DictReader(io.StringIO(text[1:])))
    assert row == {
        "session_id": str(sid),
        "station_id": "1",
        "user": '\'=HYPERLINK("http://evil")',
        "card_uid": "CARD1",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:01:30+00:00",
        "duration_s": "90",
        "duration": "0:01:30",
        "kwh": "1.235",
        "cost": "8.64",
        "tariff": "7.0",
        "end_reason": "local_stop",
    }
    assert sessions_to_csv([]) == (
        "\ufeffsession_id,station_id,user,card_uid,started_at,ended_at,"
        "duration_s,duration,kwh,cost,tariff,end_reason\r\n"
    )


async def test_export_walks_every_page_of_a_long_history(storage):
    await sessions_on_two_stations(storage, count=1)
    for i in range(1, 1205):
        await storage.create_session(1, 1, "CARD", T0 + i, 7.0, {})
    text, count = await export_sessions(storage, station_id=1)
    assert count == 1205
    assert len(text.splitlines()) == 1206


async def test_history_totals_are_summed_by_the_database_over_every_matching_session(storage):
    """What /api/sessions shows under the table: every matching session, not only the page;
    an open session's duration runs up to now, each duration in whole seconds."""
    ids, ana, _ = await sessions_on_two_stations(storage, count=3)  # stations 1, 2, 1
    await storage.end_session(ids[0], T0 + 90.9, 1.25, 8.75, "local_stop", {})
    await storage.end_session(ids[1], T0 + 3600 + 30.5, 2.5, 12.5, "local_stop", {})
    now = T0 + 2 * 3600 + 10.7  # ids[2] is open since T0 + 7200
    assert await storage.session_totals(now) == {
        "sessions": 3,
        "kwh": 3.75,
        "cost": 21.25,
        "duration": 90 + 30 + 10,
    }
    assert await storage.session_totals(now, station_id=1) == {
        "sessions": 2,
        "kwh": 1.25,
        "cost": 8.75,
        "duration": 100,
    }
    assert await storage.session_totals(now, user_id=ana.id, since=T0 + 1) == {
        "sessions": 1,
        "kwh": 2.5,
        "cost": 12.5,
        "duration": 30,
    }
    assert await storage.session_totals(now, station_id=99) == {
        "sessions": 0,
        "kwh": 0.0,
        "cost": 0.0,
        "duration": 0,
    }
    with pytest.raises(ValueError, match="must be"):
        await storage.session_totals(now, since=float("nan"))


async def test_a_station_added_without_an_id_after_one_with_an_id_gets_the_next_free_one(storage):
    await storage.add_station("Estación 1", 7.0, station_id=1)  # the demo's, by hand
    await storage.add_station("Estación 7", 7.0, station_id=7)
    added = await storage.add_station("Nueva", 7.0)
    assert added.id == 8
    assert [s.id for s in await storage.list_stations()] == [1, 7, 8]

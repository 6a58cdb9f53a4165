"""`station_as_stored`: one station's state as the database has it (what a fleet process
reloads when it takes the station over, server/cluster/fleet.py), read with per-station
queries; same answers on both backends, and only that station's rows."""

import pytest

from server.storage import NotFound

T0 = 1_767_225_600.0


async def two_stations(storage):
    """Station 1: sessions closed, closed, open; station 2: a closed one, latched."""
    for station_id in (1, 2):
        await storage.add_station(f"Estación {station_id}", 7.0, station_id=station_id)
    user = await storage.add_user("Ana")
    await storage.add_card("04A1B2C3", user.id)
    ids = {}
    for name, station_id, at in (("c1", 1, 0), ("other", 2, 5), ("c2", 1, 10), ("open", 1, 20)):
        ids[name] = await storage.create_session(
            station_id, user.id, "04A1B2C3", T0 + at, 7.0, {"mode": "register", "wh0": 1000.0}
        )
        if name != "open":
            await storage.end_session(ids[name], T0 + at + 1, 0.5, 3.5, "local_stop", {})
    await storage.set_emergency_latch(2, T0 + 30)
    return ids


async def test_a_station_as_stored_is_its_open_session_its_last_closed_ones_and_its_latch(storage):
    ids = await two_stations(storage)
    open_session, recent, latched = await storage.station_as_stored(1, 5)
    assert open_session is not None
    assert (open_session.id, open_session.station_id, open_session.ended_at) == (
        ids["open"],
        1,
        None,
    )
    assert open_session.user_name == "Ana" and open_session.started_at == T0 + 20
    assert recent == [ids["c1"], ids["c2"]] and latched is False  # oldest first, station 1's only
    assert await storage.station_as_stored(1, 1) == (open_session, [ids["c2"]], False)
    assert await storage.station_as_stored(2, 5) == (None, [ids["other"]], True)
    # the same as the whole-table reads it replaces
    assert (await storage.recent_closed_sessions(5))[1] == recent
    assert [s for s in await storage.open_sessions() if s.station_id == 1] == [open_session]


async def test_an_unknown_station_or_a_bad_count_is_refused_before_any_row_is_read(storage):
    await two_stations(storage)
    with pytest.raises(NotFound, match="station 9 does not exist"):
        await storage.station_as_stored(9, 5)
    with pytest.raises(ValueError):
        await storage.station_as_stored(1, -1)
    with pytest.raises(ValueError):
        await storage.station_as_stored(0, 5)

"""What the session core reloads at start besides open sessions: each station's emergency
latch (stations.emergency_latched_at) and its recently closed sessions."""

import pytest

from server.storage import NotFound, open_storage
from tests.storage.conftest import outside

T0 = 1_767_225_600.0


async def test_the_latch_is_committed_at_once_and_survives_a_reopen(target, storage):
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.add_station("Estación 2", 7.0, station_id=2)
    await storage.set_emergency_latch(2, T0)
    assert await outside(target, "SELECT id, emergency_latched_at FROM stations ORDER BY id") == [
        (1, None),
        (2, T0),
    ]
    await storage.close()
    reopened = await open_storage(target)
    try:
        assert await reopened.emergency_latches() == {2: T0}
        await reopened.set_emergency_latch(2, None)  # the charger reported its local reset
        assert await reopened.emergency_latches() == {}
    finally:
        await reopened.close()


async def test_a_latch_for_an_unknown_station_or_a_bad_time_is_refused(storage):
    with pytest.raises(NotFound):
        await storage.set_emergency_latch(9, T0)
    await storage.add_station("Estación 1", 7.0, station_id=1)
    with pytest.raises(ValueError):
        await storage.set_emergency_latch(1, float("nan"))
    assert await storage.emergency_latches() == {}


async def test_recent_closed_sessions_are_the_newest_per_station_oldest_first(storage):
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.add_station("Estación 2", 7.0, station_id=2)
    user = await storage.add_user("Ana")
    ids = {1: [], 2: []}
    for k in range(7):
        station = 1 if k < 5 else 2
        session_id = await storage.create_session(station, user.id, "CARD1", T0 + k, 7.0, {})
        ids[station].append(session_id)
        if k != 4:  # the last one of station 1 is still open
            await storage.end_session(session_id, T0 + k + 1, 0.0, 0.0, "local_stop", {})
    assert await storage.recent_closed_sessions(3) == {1: ids[1][1:4], 2: ids[2]}

"""Offline authorization's storage (issue 13, migration 0006), on both backends: the station's
offline setting, the signed lists' versions (kept for good, numbered per station, never the
same version twice even from two connections at once), the cards a list is made from, and the
session of an offline start found again by the charger's local id (unique per station)."""

import asyncio

import pytest

from server.storage import Duplicate, NotFound, OfflineAuthState, Unsupported, open_storage

from .conftest import outside

T0 = 1_767_225_600.0
LOCAL = 2**31 + 2**30 - 1  # the largest local id a charger draws (above PostgreSQL's INTEGER)


async def two_stations_and_cards(storage):
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.add_station("Estación 2", 7.0, station_id=2)
    ana = await storage.add_user("Ana")
    await storage.add_card("04A1B2C3", ana.id)
    await storage.add_card("04D5E6F7", ana.id)
    await storage.add_card("0A0B0C0D", ana.id)
    return ana.id


async def test_offline_starts_are_on_by_default_and_turned_off_per_station(storage):
    await two_stations_and_cards(storage)
    assert await storage.offline_auth(1) is True and await storage.offline_auth(2) is True
    await storage.set_offline_auth(2, False)
    assert await storage.offline_auth(1) is True and await storage.offline_auth(2) is False
    await storage.set_offline_auth(2, True)
    assert await storage.offline_auth(2) is True
    assert await storage.offline_auth(9) is None
    with pytest.raises(NotFound, match="station 9 does not exist"):
        await storage.set_offline_auth(9, False)


async def test_the_station_record_carries_its_offline_setting(storage):
    """What /api/stations shows, read with the station itself (no query per station)."""
    await two_stations_and_cards(storage)
    await storage.set_offline_auth(2, False)
    assert [(s.id, s.offline_auth) for s in await storage.list_stations()] == [
        (1, True),
        (2, False),
    ]
    assert (await storage.get_station(2)).offline_auth is False
    added = await storage.add_station("Estación 3", 7.0, station_id=3)
    assert added.offline_auth is True and added == await storage.get_station(3)


async def test_an_ocpp_station_s_offline_setting_is_refused_and_left_as_it_was(storage, target):
    """An OCPP charger gets no signed list: the setting would change nothing, so it is refused
    (on or off alike) rather than stored as if it worked."""
    await two_stations_and_cards(storage)
    await storage.add_station("Wallbox", 7.0, station_id=3, charge_point_id="CP-0042")
    for allowed in (False, True):
        with pytest.raises(Unsupported, match=r"station 3 is an OCPP 1\.6J station \(charge"):
            await storage.set_offline_auth(3, allowed)
    assert await outside(target, "SELECT offline_auth FROM stations WHERE id = 3") == [(1,)]
    with pytest.raises(ValueError, match="station id must be a positive whole number"):
        await storage.set_offline_auth(0, False)


async def test_the_admin_states_are_every_seed_station_with_its_key_and_newest_list(storage):
    await two_stations_and_cards(storage)
    await storage.add_station("Wallbox", 7.0, station_id=3, charge_point_id="CP-0042")
    await storage.add_station("Estación 4", 7.0, station_id=4)
    await storage.set_station_key_hash(1, "a" * 64)
    await storage.set_station_key_hash(4, "")  # an empty hash is no key
    await storage.set_offline_auth(2, False)
    await storage.save_auth_list(1, True, "04A1B2C3,04D5E6F7", T0)
    await storage.save_auth_list(1, False, "04A1B2C3", T0 + 5)
    await storage.save_auth_list(2, False, "", T0 + 6)
    assert await storage.offline_auth_states() == [
        OfflineAuthState(1, True, True, (2, False, "04A1B2C3", T0 + 5)),
        OfflineAuthState(2, False, False, (1, False, "", T0 + 6)),
        OfflineAuthState(4, True, False, None),
    ]  # OCPP station 3 gets no list: not there


async def test_each_saved_list_is_the_stations_next_version_and_every_version_is_kept(storage):
    await two_stations_and_cards(storage)
    assert await storage.latest_auth_list(1) is None
    assert await storage.save_auth_list(1, True, "04A1B2C3,04D5E6F7", T0) == 1
    assert await storage.save_auth_list(1, False, "04A1B2C3", T0 + 5) == 2
    assert await storage.save_auth_list(2, True, "", T0 + 6) == 1  # per station
    assert await storage.latest_auth_list(1) == (2, False, "04A1B2C3", T0 + 5)
    assert await storage.auth_list(1, 1) == (1, True, "04A1B2C3,04D5E6F7", T0)
    assert await storage.auth_list(2, 1) == (1, True, "", T0 + 6)
    assert await storage.auth_list(1, 3) is None and await storage.auth_list(9, 1) is None
    with pytest.raises(NotFound, match="station 9 does not exist"):
        await storage.save_auth_list(9, True, "04A1B2C3", T0)


async def test_lists_saved_at_once_from_two_connections_get_different_versions(storage, target):
    await two_stations_and_cards(storage)
    other = await open_storage(target)  # another server process, or the admin CLI
    try:
        versions = await asyncio.gather(
            *(
                (storage if i % 2 else other).save_auth_list(1, True, f"CARD{i}", T0 + i)
                for i in range(8)
            )
        )
    finally:
        await other.close()
    assert sorted(versions) == list(range(1, 9))
    stored = await outside(
        target, "SELECT version, cards FROM auth_lists WHERE station_id = ? ORDER BY version", (1,)
    )
    assert {cards: version for version, cards in stored} == {
        f"CARD{i}": versions[i] for i in range(8)
    }


async def test_the_candidates_are_the_enabled_cards_with_their_latest_start(storage):
    user_id = await two_stations_and_cards(storage)
    first = await storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {})
    await storage.end_session(first, T0 + 60, 1.0, 7.0, "local_stop", {})
    await storage.create_session(2, user_id, "04A1B2C3", T0 + 100, 7.0, {})
    await storage.set_card_enabled("0A0B0C0D", False)
    assert sorted(await storage.offline_candidates()) == [
        ("04A1B2C3", T0 + 100),
        ("04D5E6F7", None),
    ]


async def test_an_offline_start_is_one_session_per_station_and_local_id(storage, target):
    user_id = await two_stations_and_cards(storage)
    assert await storage.offline_session(1, LOCAL) is None
    session_id = await storage.create_session(
        1, user_id, "04A1B2C3", T0, 7.0, {}, offline_local_id=LOCAL
    )
    assert await storage.offline_session(1, LOCAL) == session_id
    assert await storage.offline_session(2, LOCAL) is None
    with pytest.raises(Duplicate, match=f"station 1 already has offline start {LOCAL}"):
        await storage.create_session(
            1, user_id, "04A1B2C3", T0 + 1, 7.0, {}, offline_local_id=LOCAL
        )
    other = await storage.create_session(
        2, user_id, "04D5E6F7", T0, 7.0, {}, offline_local_id=LOCAL
    )  # another charger's id
    online = await storage.create_session(1, user_id, "04D5E6F7", T0 + 2, 7.0, {})
    assert await outside(
        target, "SELECT id, station_id, offline_local_id FROM sessions ORDER BY id"
    ) == [(session_id, 1, LOCAL), (other, 2, LOCAL), (online, 1, None)]
    with pytest.raises(ValueError):
        await storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {}, offline_local_id=-1)


async def test_a_push_reads_key_setting_and_newest_list_together(storage):
    await two_stations_and_cards(storage)
    assert await storage.offline_state(1) == ("", True, None)  # no key yet, no list
    await storage.set_station_key_hash(1, "a" * 64)
    await storage.set_offline_auth(1, False)
    await storage.save_auth_list(1, True, "04A1B2C3", T0)
    await storage.save_auth_list(1, False, "", T0 + 5)
    assert await storage.offline_state(1) == ("a" * 64, False, (2, False, "", T0 + 5))
    assert await storage.offline_state(9) is None


async def test_when_a_charger_was_last_seen_survives_a_reopen(storage, target):
    """Migration 0007: the bound of an offline start reported after a restart."""
    await two_stations_and_cards(storage)
    assert await storage.last_seen(1) is None
    await storage.set_last_seen(1, T0 + 30)
    other = await open_storage(target)  # the restarted server
    try:
        assert await other.last_seen(1) == T0 + 30 and await other.last_seen(2) is None
    finally:
        await other.close()
    assert await storage.last_seen(9) is None
    with pytest.raises(NotFound, match="station 9 does not exist"):
        await storage.set_last_seen(9, T0)
    with pytest.raises(ValueError, match="last_seen_at must be a finite number"):
        await storage.set_last_seen(1, float("nan"))
    assert await storage.last_seen(1) == T0 + 30


async def test_the_latest_start_of_a_card_is_found_through_an_index(storage, target):
    """Migration 0007: offline_candidates looks each card up in sessions_by_card instead of
    scanning every session (tools/bench_offline_candidates.py prints the difference)."""
    if isinstance(target, str):
        rows = await outside(
            target, "SELECT indexdef FROM pg_indexes WHERE indexname = 'sessions_by_card'"
        )
        assert rows and "(card_uid, started_at)" in rows[0][0]
        return
    plan = await outside(
        target,
        "EXPLAIN QUERY PLAN SELECT max(s.started_at) FROM sessions s WHERE s.card_uid = ?",
        ("04A1B2C3",),
    )
    assert any("sessions_by_card" in str(row) for row in plan), plan

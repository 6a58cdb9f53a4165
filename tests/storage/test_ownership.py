"""Station ownership (several server processes on one database): a claim moves the station's
epoch up, the newest claimer wins, and a write carrying an older epoch is refused, leaving
nothing written. Same contract on SQLite (one process: claims always succeed)."""

import asyncio

import pytest

from server.storage import NotFound, StaleOwner, open_storage

from .conftest import outside, reading

T0 = 1_767_225_600.0


async def station_user_card(storage):
    await storage.add_station("Estación 1", 7.0, station_id=1)
    user = await storage.add_user("Ana")
    await storage.add_card("04A1B2C3", user.id)
    return user.id


async def test_each_claim_moves_the_epoch_up_and_names_the_owner(storage):
    await station_user_card(storage)
    assert await storage.station_owner(1) == (None, 0)
    assert await storage.claim_station(1, "proc-a") == 1
    assert await storage.claim_station(1, "proc-b") == 2
    assert await storage.station_owner(1) == ("proc-b", 2)
    with pytest.raises(NotFound, match="station 9 does not exist"):
        await storage.claim_station(9, "proc-a")
    with pytest.raises(ValueError):
        await storage.claim_station(1, "")


async def test_the_old_owner_can_neither_start_nor_end_a_session_nor_latch(storage, target):
    user_id = await station_user_card(storage)
    old = await storage.claim_station(1, "proc-a")
    session_id = await storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {}, epoch=old)
    storage.queue_reading(reading(session_id, 1))
    new = await storage.claim_station(1, "proc-b")  # the charger reconnected elsewhere

    with pytest.raises(
        StaleOwner, match="owned by 'proc-b' at epoch 2; this write carried epoch 1"
    ):
        await storage.create_session(1, user_id, "04A1B2C3", T0 + 5, 7.0, {}, epoch=old)
    with pytest.raises(StaleOwner):
        await storage.end_session(session_id, T0 + 60, 1.0, 7.0, "local_stop", {}, epoch=old)
    with pytest.raises(StaleOwner):
        await storage.set_emergency_latch(1, T0 + 61, epoch=old)
    # nothing of the refused writes is stored; the reading queued before stays queued
    assert await outside(target, "SELECT id, ended_at FROM sessions") == [(session_id, None)]
    assert await storage.emergency_latches() == {}

    # the new owner carries on with the same open session
    assert (
        await storage.end_session(session_id, T0 + 60, 1.0, 7.0, "local_stop", {}, epoch=new)
        is True
    )
    assert [r.ts for r in await storage.readings(session_id)] == [1_700_000_001.0]
    await storage.set_emergency_latch(1, T0 + 61, epoch=new)
    assert await storage.emergency_latches() == {1: T0 + 61}


async def test_a_stale_owners_progress_never_overwrites_the_new_owners_totals(storage):
    user_id = await station_user_card(storage)
    old = await storage.claim_station(1, "proc-a")
    session_id = await storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {}, epoch=old)
    new = await storage.claim_station(1, "proc-b")
    storage.queue_progress(session_id, 2.0, 14.0, {"by": "b"}, epoch=new)
    await storage.flush()
    storage.queue_progress(session_id, 1.5, 10.5, {"by": "a"}, epoch=old)  # late, from proc-a
    await storage.flush()
    saved = await storage.get_session(session_id)
    assert (saved.kwh, saved.cost, saved.energy_state) == (2.0, 14.0, {"by": "b"})


async def test_unfenced_writes_still_work_for_a_single_process(storage):
    user_id = await station_user_card(storage)
    await storage.claim_station(1, "proc-a")
    session_id = await storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {})
    assert await storage.end_session(session_id, T0 + 1, 0.0, 0.0, "local_stop", {}) is True


@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_processes_claiming_at_once_get_distinct_epochs_and_the_last_wins(target):
    first, second = await open_storage(target), await open_storage(target)
    try:
        user_id = await station_user_card(first)
        epochs = await asyncio.gather(
            *(
                storage.claim_station(1, f"proc-{k}")
                for k, storage in enumerate([first, second] * 10)
            )
        )
        assert sorted(epochs) == list(range(1, 21))
        owner, epoch = await second.station_owner(1)
        assert epoch == 20 and owner == f"proc-{epochs.index(20)}"
        stale = await asyncio.gather(
            *(
                storage.create_session(1, user_id, "04A1B2C3", T0, 7.0, {}, epoch=e)
                for storage, e in ((first, 19), (second, 20))
            ),
            return_exceptions=True,
        )
        assert isinstance(stale[0], StaleOwner) and isinstance(stale[1], int)
    finally:
        await first.close()
        await second.close()

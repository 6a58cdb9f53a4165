"""The collector policy: long-lived objects are frozen (no full-collection pauses over them),
yet what they leave behind when a connection closes is still reclaimed, by the periodic sweep
and when the server stops."""

import asyncio
import gc
import weakref

from server.gc_policy import keep_long_lived_objects_frozen
from tests.storage.conftest import wait_until


async def stop(policy: asyncio.Task) -> None:
    policy.cancel()
    await asyncio.gather(policy, return_exceptions=True)


async def frozen(freeze_every: float, sweep_every: float) -> asyncio.Task:
    """The policy, running and past its first freeze."""
    policy = asyncio.create_task(keep_long_lived_objects_frozen(freeze_every, sweep_every))
    await wait_until(lambda: gc.get_freeze_count() > 0, what="the first freeze")
    return policy


class Connectionish:
    """Stands in for a connection's objects: a reference cycle, freed only by the collector."""

    def __init__(self):
        self.me = self


async def test_a_frozen_cycle_is_not_collected_until_the_policy_stops():
    alive = Connectionish()
    ref = weakref.ref(alive)
    policy = await frozen(freeze_every=0.01, sweep_every=3600)
    try:
        del alive  # the "connection" closes: its cycle is garbage now, but frozen
        gc.collect()
        assert ref() is not None
    finally:
        await stop(policy)
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None


async def test_the_periodic_sweep_reclaims_what_closed_connections_left_frozen():
    alive = Connectionish()
    ref = weakref.ref(alive)
    policy = await frozen(freeze_every=0.01, sweep_every=0.05)
    try:
        del alive
        await wait_until(lambda: ref() is None, what="a sweep to collect the frozen cycle")
    finally:
        await stop(policy)

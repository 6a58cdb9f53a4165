"""Garbage-collector policy for a process that holds thousands of long-lived connections.

CPython's cyclic collector walks every tracked object in a full (generation-2) collection:
with 3,000 connections that is ~300,000 objects and 100-590 ms during which no frame is
read, once every 15-20 s under load (measured: docs/performance.md). Almost all of those
objects live as long as their connection, so walking them again and again finds nothing.

`keep_long_lived_objects_frozen()` moves every object alive at start-up, and then every
`freeze_every` seconds, into the permanent generation (`gc.freeze()`): the collector only
looks at what is younger. Short-lived garbage cycles are still collected by the young
collections (every ~700 allocations, long before the next freeze). What a freeze cannot do is
collect a frozen object that later becomes cyclic garbage (a closed connection's objects), so
every `sweep_every` seconds the frozen objects are handed back (`gc.unfreeze()`), collected in
one full collection, and frozen again: one pause per sweep instead of one every 15-20 s.
Measured against a higher `gc.set_threshold`, only the freeze removed the pauses from the
tail latency, so only the freeze is kept. Nothing here is per message.
"""

import asyncio
import gc
import logging

log = logging.getLogger(__name__)

FREEZE_INTERVAL_S = 5.0
SWEEP_INTERVAL_S = 600.0


async def keep_long_lived_objects_frozen(
    freeze_every: float = FREEZE_INTERVAL_S, sweep_every: float = SWEEP_INTERVAL_S
) -> None:
    """Run until cancelled; on cancel, unfreeze (the process's objects are collectable again)."""
    loop = asyncio.get_running_loop()
    gc.freeze()
    swept_at = loop.time()
    try:
        while True:
            await asyncio.sleep(freeze_every)
            if loop.time() - swept_at >= sweep_every:
                gc.unfreeze()
                started = loop.time()
                collected = gc.collect()
                swept_at = loop.time()
                log.debug(
                    "gc sweep: %d unreachable objects in %.0f ms",
                    collected,
                    (swept_at - started) * 1000,
                )
            gc.freeze()
    finally:
        gc.unfreeze()

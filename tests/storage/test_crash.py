"""A SIGKILLed server loses nothing that was flushed and leaves consistent sessions."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from server.storage import open_storage

from .conftest import outside

ROOT = Path(__file__).resolve().parents[2]

# Opens the database, starts a session, flushes batches of readings with their progress,
# reports each flush on stdout, then queues more without flushing and waits to be killed.
WRITER = r"""
import asyncio, sys
from server.storage import Reading, open_storage

async def main(path):
    storage = await open_storage(path, flush_interval=3600)
    station = await storage.add_station("S", 7.0)
    user = await storage.add_user("U")
    sid = await storage.create_session(station.id, user.id, "CARD1", 1000.0, 7.0, {"wh0": 0})
    i = 0
    for batch in range(5):
        for _ in range(100):
            i += 1
            kwh = i / 1000
            storage.queue_reading(Reading(sid, 1000.0 + i, 230.0, 16.0, 3680.0, float(i), kwh))
            storage.queue_progress(sid, kwh, round(kwh * 7.0, 4), {"wh0": 0, "last_wh": i})
        await storage.flush()
    for _ in range(50):  # queued, never flushed: lost by the kill, by design
        i += 1
        storage.queue_reading(Reading(sid, 1000.0 + i, 230.0, 16.0, 3680.0, float(i), i / 1000))
        storage.queue_progress(sid, i / 1000, 0.0, {"wh0": 0, "last_wh": i})
    print("flushed", sid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_sigkilled_process_keeps_every_flushed_reading_and_consistent_totals(target):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        line = writer.stdout.readline()
        assert line.startswith("flushed"), line
        session_id = int(line.split()[1])
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL

    if isinstance(target, Path):
        assert await outside(target, "PRAGMA integrity_check") == [("ok",)]
    storage = await open_storage(target)
    try:
        [session] = await storage.open_sessions()
        readings = await storage.readings(session_id)
        assert len(readings) == 500
        assert session.id == session_id
        # the totals are the ones saved with the last flushed reading
        assert session.kwh == readings[-1].kwh == 0.5
        assert session.cost == 3.5
        assert session.energy_state == {"wh0": 0, "last_wh": 500}
    finally:
        await storage.close()

"""Back-pressure: when the queue of unwritten readings is full, a charger's frames wait until
the readings are written (the flusher's timer is set to an hour here, so only the
back-pressure can commit), and nothing is lost. Real server, real charger socket, a real
SQLite file and a real PostgreSQL database."""

import time

from server.storage import batcher as store_module
from tests.live_server import (
    base_url,
    publisher,
    receive_json,
    running_server,
    send_json,
    server_storage,
)
from tests.storage.conftest import outside, wait_until

CARD = "VIRTUAL-1-A4F2E8"
BOUND = 5


async def committed(target) -> int:
    return (await outside(target, "SELECT count(*) FROM readings"))[0][0]


async def test_a_full_reading_queue_is_written_without_the_timer_and_nothing_is_lost(
    target, tmp_path, monkeypatch
):
    monkeypatch.setattr(store_module, "FLUSH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(store_module, "MAX_QUEUED_READINGS", BOUND)
    db_path, overrides = server_storage(target, tmp_path)
    sent = 40

    async def at_least(count):
        return await committed(target) >= count

    async with running_server(db_path, **overrides) as app:
        charger = await publisher(base_url(app))
        async with charger:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
            session_id = (await receive_json(charger))["session_id"]
            now = time.time()
            for i in range(sent):
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230.0,
                        "a": 16.0,
                        "w": 3680.0,
                        "ts": now - sent + i,
                        "wh": 1000 + i,
                    },
                )
            # a frame the server answers: every metrics before it has been handled
            await send_json(
                charger,
                {
                    "type": "metrics",
                    "session_id": session_id + 1,
                    "v": 230.0,
                    "a": 16.0,
                    "w": 3680.0,
                },
            )
            assert (await receive_json(charger))["code"] == "SESSION_MISMATCH"
            assert not app.storage.full  # the charger was not read on while the queue was full
            # with an hour-long flush timer only the back-pressure flushes can have committed
            await wait_until(
                lambda: at_least(sent - BOUND), what="the back-pressure flushes to commit"
            )
            await send_json(charger, {"type": "stop", "session_id": session_id})
            await wait_until(lambda: at_least(sent), what="the stop to write the rest")
    assert await committed(target) == sent

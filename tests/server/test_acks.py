"""Acknowledged delivery: the server tells a charger `{"type":"ack","n":K}` only once the first K
frames it sent on this connection are committed to the database. Real server, a real
websockets client as the charger, the database read by a separate connection (what survives a
SIGKILL of the server); the first two tests on both backends (SQLite file, PostgreSQL)."""

import asyncio
import json
import signal
import sqlite3
import time

from tests.live_server import (
    base_url,
    close_code,
    publisher,
    receive_type,
    running_server,
    send_json,
    server_storage,
)
from tests.server.test_faults import charger_of, start_server_process
from tests.storage.conftest import outside, refuse_writes, wait_until

CARD = "VIRTUAL-1-A4F2E8"
PROBE = {
    "type": "sync_check"
}  # an unknown type: answered INVALID_MESSAGE after every frame before it


def stored_ts(db, session_id) -> list[float]:
    """The `ts` each stored reading's charger claimed, in the order they were stored (the `ts`
    column is the reading's place on the server-bounded timeline: docs/protocol.md)."""
    with sqlite3.connect(db, timeout=10) as database:
        return [
            ts
            for (ts,) in database.execute(
                "SELECT charger_ts FROM readings WHERE session_id = ? ORDER BY id", (session_id,)
            )
        ]


async def committed_ts(target, session_id) -> list[float]:
    """stored_ts on either backend, through a separate connection."""
    return [
        ts
        for (ts,) in await outside(
            target,
            "SELECT charger_ts FROM readings WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
    ]


def metrics(session_id, ts, wh) -> dict:
    return {
        "type": "metrics",
        "session_id": session_id,
        "v": 230.0,
        "a": 16.0,
        "w": 3680.0,
        "ts": ts,
        "wh": wh,
    }


async def start_session(charger) -> int:
    """Frame 1: a tap that starts a session."""
    await send_json(charger, {"type": "nfc_scan", "nfc_uid": CARD})
    return (await receive_type(charger, "start"))["session_id"]


async def acks_until_probe_answered(charger) -> list[int]:
    """Send PROBE (one more frame) and return the n of every ack received before its answer."""
    await send_json(charger, PROBE)
    seen = []
    while True:
        message = json.loads(await asyncio.wait_for(charger.recv(), 10))
        if message["type"] == "ack":
            seen.append(message["n"])
        elif message["type"] == "error" and message["code"] == "INVALID_MESSAGE":
            return seen


async def test_each_ack_arrives_only_when_the_readings_of_the_frames_it_covers_are_in_the_file(
    target, tmp_path
):
    db, overrides = server_storage(target, tmp_path)
    async with running_server(db, **overrides) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = await start_session(charger)
            t0 = time.time() - 100
            sent = 60
            for i in range(sent):  # frames 2..61, over several flushes (one every 0.25 s)
                await send_json(charger, metrics(session_id, t0 + i, 1000 + i))
            seen = []
            while not seen or seen[-1] < sent + 1:
                n = (await receive_type(charger, "ack"))["n"]
                in_file = await committed_ts(target, session_id)  # only ever grows
                # frame k >= 2 carries reading k-2: every reading of frames <= n is committed
                assert in_file[: n - 1] == [t0 + i for i in range(n - 1)], (n, len(in_file))
                seen.append(n)
    assert seen == sorted(set(seen))  # sent only when it grew
    assert seen[-1] == sent + 1  # exactly the frames sent: the tap and every reading


async def test_no_ack_advances_while_the_database_cannot_be_written_and_all_follow_after_recovery(
    target, tmp_path
):
    db, overrides = server_storage(target, tmp_path)
    async with running_server(db, **overrides) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = await start_session(charger)
            assert (await receive_type(charger, "ack"))["n"] == 1  # the session is committed
            await refuse_writes(app.storage, target, True)  # every write now fails
            t0 = time.time() - 100
            for i in range(5):  # frames 2..6
                await send_json(charger, metrics(session_id, t0 + i, 1000 + i))
            failed = app.storage.failed_flushes
            await wait_until(
                lambda: app.storage.failed_flushes >= failed + 2,
                what="two flushes to fail on the read-only database",
            )
            assert await acks_until_probe_answered(charger) == []  # frame 7: nothing more confirmed
            assert await committed_ts(target, session_id) == []
            await refuse_writes(app.storage, target, False)  # the database is writable again
            while (await receive_type(charger, "ack"))["n"] < 7:
                pass
            assert await committed_ts(target, session_id) == [t0 + i for i in range(5)]


async def test_invalid_frames_and_duplicates_are_acknowledged_and_do_not_stall_the_count(tmp_path):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = await start_session(charger)  # frame 1
            t0 = time.time() - 100
            await send_json(charger, metrics(session_id, t0, 1000))  # 2
            await send_json(charger, metrics(session_id, t0 + 1, 1001))  # 3
            await send_json(charger, metrics(session_id, t0 + 1, 1001))  # 4: exact duplicate
            await send_json(charger, metrics(session_id, t0, 1000))  # 5: an older replay
            await charger.send("not json")  # 6: INVALID_MESSAGE
            await charger.send(b"\x00\x01")  # 7: binary, INVALID_MESSAGE
            await send_json(charger, {"type": "metrics", "session_id": session_id, "v": -1})  # 8
            await send_json(charger, metrics(session_id + 1, t0 + 2, 1002))  # 9: SESSION_MISMATCH
            await send_json(
                charger, {"type": "status", "state": "charging", "session_id": session_id}
            )  # 10
            await send_json(charger, metrics(session_id, t0 + 2, 1002))  # 11
            while (await receive_type(charger, "ack"))["n"] < 11:
                pass
            assert stored_ts(db, session_id) == [t0, t0 + 1, t0 + 2]  # each reading once


async def test_the_count_starts_again_on_a_new_connection_and_a_replaced_one_stops_acking(tmp_path):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        first = await publisher(base_url(app))
        session_id = await start_session(first)
        t0 = time.time() - 100
        await send_json(first, metrics(session_id, t0, 1000))
        while (await receive_type(first, "ack"))["n"] < 2:
            pass
        second = await publisher(base_url(app))  # the charger rebooted: 4008 to the old socket
        async with second:
            assert await close_code(first) == 4008
            await send_json(
                second, {"type": "status", "state": "charging", "session_id": session_id}
            )
            await send_json(second, metrics(session_id, t0 + 1, 1001))
            n = 0
            while n < 2:
                n = (await receive_type(second, "ack"))["n"]
            assert n == 2  # its own two frames, not the old connection's count + 2
        assert stored_ts(db, session_id) == [t0, t0 + 1]
        await wait_until(
            lambda: app.handler.ack_senders == {}, what="no ack sender to outlive its connection"
        )


async def test_a_stop_whose_end_could_not_be_stored_is_never_acknowledged_on_that_connection(
    tmp_path,
):
    db = tmp_path / "evse.sqlite3"
    async with running_server(db) as app:
        charger = await publisher(base_url(app))
        async with charger:
            session_id = await start_session(charger)  # frame 1
            await send_json(charger, metrics(session_id, time.time() - 10, 1000))  # frame 2
            while (await receive_type(charger, "ack"))["n"] < 2:
                pass
            await app.storage._fetch("PRAGMA query_only = ON")
            await send_json(
                charger, {"type": "stop", "session_id": session_id, "wh": 1010}
            )  # frame 3
            [sender] = app.handler.ack_senders.values()
            await wait_until(
                lambda: sender.read == 3 and sender.acknowledgeable == 2,
                what="the failed stop to be handled",
            )
            await app.storage._fetch("PRAGMA query_only = OFF")
            assert await acks_until_probe_answered(charger) == []  # frame 4 after a failed frame 3
            await wait_until(
                lambda: sender.read == 4 and app.storage.durable_mark == app.storage.write_mark(),
                what="the probe to be handled and every queued write committed",
            )
            assert sender.acknowledgeable == 2 and sender.sent == 2


async def test_every_reading_acknowledged_before_a_sigkill_of_the_server_is_in_the_file_after_it(
    tmp_path,
):
    db = tmp_path / "evse.sqlite3"
    server, url = await start_server_process(db)
    try:
        charger = await charger_of(db, url)
        session_id = await start_session(charger)  # frame 1
        t0 = time.time() - 100
        for i in range(40):  # frames 2..41, sent without waiting
            await send_json(charger, metrics(session_id, t0 + i, 1000 + i))
        n = 0
        while n < 12:  # some readings are confirmed, others are still in flight
            n = (await receive_type(charger, "ack"))["n"]
        server.send_signal(signal.SIGKILL)
        await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    assert stored_ts(db, session_id)[: n - 1] == [t0 + i for i in range(n - 1)]

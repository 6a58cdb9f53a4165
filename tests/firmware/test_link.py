"""The link (charger/link.py) on the real MicroPython unix port against a real websockets server.

The MicroPython side is the real Link and Outbox with a small handler that prints what the
link tells it (`LINK True/False`, `MSG {...}`) and takes commands on stdin (put readings or
events, WiFi down/up through the network shim, send_now, `len`: what the outbox holds). The
server is a `websockets.asyncio.server.serve` on 127.0.0.1 that records every frame per
connection and, like the real server with an instant commit, acks every frame it read
(`{"type":"ack","n":K}`); `acks = False` withholds them, `ack(conn, n)` sends one by hand.
"""

import asyncio
import json
import re

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tests.firmware.mpy import MpyProcess, requires_micropython

pytestmark = [requires_micropython, pytest.mark.timeout(120)]

DRIVER = r"""
import asyncio, json, os, select, sys
import network
from charger import messages
from charger.link import Link
from charger.outbox import Outbox

cfg = json.loads(os.getenv("LINK_CFG"))

class Handler:
    def __init__(self):
        self.state = "idle"
        self.session = None
    def status_messages(self):
        return [messages.status(self.state, self.session, 1000)]
    def on_message(self, msg):
        print("MSG", json.dumps(msg))
    def on_link(self, up):
        print("LINK", up)

handler = Handler()
box = Outbox(readings=int(os.getenv("LINK_READINGS") or 200))
link = Link(cfg, handler, box)
ts = [1700000000]

def put(n):
    for _ in range(n):
        ts[0] += 1
        box.put_reading(7, 230.0, 10.0, 2300.0, ts[0] - 1700000000, ts[0])
    link.notify()

async def commands():
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    while True:
        if poller.poll(0):
            words = sys.stdin.readline().split()
            if not words:
                return
            cmd = words[0]
            if cmd == "put":
                put(int(words[1]))
            elif cmd == "stop":
                box.put_event("stop", int(words[1]), 555, ts[0])
                link.notify()
            elif cmd == "wifi":
                network.sim_link(words[1] == "up")
            elif cmd == "charging":
                handler.state, handler.session = "charging", int(words[1])
            elif cmd == "send":
                print("SENT", await link.send_now(messages.nfc_scan(words[1])))
            elif cmd == "len":
                print("LEN", len(box), box.unconfirmed)
            print("DONE", " ".join(words))
        await asyncio.sleep_ms(10)

async def main():
    put(int(os.getenv("LINK_PRELOAD") or 0))
    asyncio.create_task(commands())
    print("READY")
    await link.run()

asyncio.run(main())
"""


class Recorder:
    """A websockets server that records frames per connection and can be stopped/restarted."""

    def __init__(self):
        self.port = 0
        self.server = None
        self.conns = []  # [{"path":..., "frames": [dict...], "ws": ...}]
        self.changed = asyncio.Condition()
        self.on_frame = None  # optional async callback(ws, msg)
        self.on_connect = None  # optional async callback(ws)
        self.acks = True  # ack every frame as soon as it is read

    async def start(self):
        self.server = await serve(self._handler, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _handler(self, ws):
        conn = {"path": ws.request.path, "frames": [], "ws": ws, "closed": False}
        async with self.changed:
            self.conns.append(conn)
            self.changed.notify_all()
        try:
            if self.on_connect:
                await self.on_connect(ws)
            async for text in ws:
                msg = json.loads(text)
                async with self.changed:
                    conn["frames"].append(msg)
                    self.changed.notify_all()
                if self.acks:
                    await ws.send('{"type":"ack","n":%d}' % len(conn["frames"]))
                if self.on_frame:
                    await self.on_frame(ws, msg)
        except ConnectionClosed:
            pass
        finally:
            async with self.changed:
                conn["closed"] = True
                self.changed.notify_all()

    async def wait(self, cond, timeout=30):
        """Wait until cond() is true (re-checked on every frame or connection change)."""

        async def waiter():
            async with self.changed:
                await self.changed.wait_for(cond)

        try:
            await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            raise AssertionError("timeout; connections: %s" % self.describe()) from None

    async def frames(self, conn_index, count, timeout=30):
        await self.wait(
            lambda: len(self.conns) > conn_index and len(self.conns[conn_index]["frames"]) >= count,
            timeout,
        )
        return self.conns[conn_index]["frames"]

    async def ack(self, conn_index, n):
        await self.conns[conn_index]["ws"].send('{"type":"ack","n":%d}' % n)

    def describe(self):
        return [(c["path"], c["frames"], c["closed"]) for c in self.conns]


def config(port, **extra):
    cfg = {
        "server_url": "ws://127.0.0.1:%d/ws" % port,
        "station": 3,
        "token": "tok en/1",
        "wifi": {"ssid": "sim-ap", "password": "secret"},
        "ping_interval_s": 5,
        "ping_timeout_s": 5,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.4,
        "connect_timeout_s": 20,
        "wifi_timeout_s": 0.5,
    }
    cfg.update(extra)
    return cfg


def charger(cfg, preload=0, readings=200):
    return MpyProcess(
        DRIVER,
        env={
            "LINK_CFG": json.dumps(cfg),
            "LINK_PRELOAD": str(preload),
            "LINK_READINGS": str(readings),
        },
    )


@pytest.fixture
async def server():
    rec = Recorder()
    await rec.start()
    try:
        yield rec
    finally:
        if rec.server is not None:
            await rec.stop()


def metrics_ts(frames):
    return [f["ts"] - 1700000000 for f in frames if f["type"] == "metrics"]


async def test_connects_as_publisher_sends_status_first_then_the_outbox_in_order(server):
    async with charger(config(server.port), preload=5) as proc:
        frames = await server.frames(0, 6)
        await proc.expect("LINK True")
    assert server.conns[0]["path"] == "/ws?role=publisher&estacionId=3&token=tok%20en%2F1"
    assert frames[0] == {"type": "status", "state": "idle", "session_id": None, "wh": 1000}
    assert metrics_ts(frames[1:]) == [1, 2, 3, 4, 5]
    assert frames[1] == {
        "type": "metrics",
        "session_id": 7,
        "v": 230.0,
        "a": 10.0,
        "w": 2300.0,
        "wh": 1,
        "ts": 1700000001,
    }


async def test_entries_put_while_connected_are_sent_as_they_arrive(server):
    async with charger(config(server.port)) as proc:
        await proc.expect("LINK True")
        proc.send("put 2")
        proc.send("stop 7")
        proc.send("put 1")
        frames = await server.frames(0, 5)
    assert [f["type"] for f in frames] == ["status", "metrics", "metrics", "stop", "metrics"]
    assert frames[3] == {"type": "stop", "session_id": 7, "wh": 555, "ts": 1700000002}


async def test_reconnects_with_growing_backoff_and_replays_status_then_outbox(server):
    async with charger(config(server.port)) as proc:
        await proc.expect("LINK True")
        await server.frames(0, 1)
        await server.stop()  # the server goes away
        await proc.expect("LINK False")
        proc.send("put 3")  # readings while offline
        proc.send("stop 7")
        await proc.expect("DONE stop 7")
        for _ in range(4):  # several failed attempts, backing off
            await proc.expect("reconnect in")
        await server.start()  # same port: the server comes back
        frames = await server.frames(1, 5)
        await proc.expect("LINK True")
    assert frames[0]["type"] == "status"
    assert metrics_ts(frames[1:4]) == [1, 2, 3] and frames[4]["type"] == "stop"
    waits = [int(m) for m in re.findall(r"reconnect in (\d+) ms", proc.output())]
    # 50 ms doubling to the 400 ms cap, each within +-25 % jitter
    assert waits[0] <= 63 and max(waits) <= 500
    assert any(w >= 300 for w in waits), waits
    for a, b in zip(waits, waits[1:4]):
        assert b > a, waits


async def test_sync_request_makes_the_link_resend_the_status(server):
    async with charger(config(server.port)) as proc:
        await server.frames(0, 1)
        proc.send("charging 42")
        await proc.expect("DONE charging 42")
        await server.conns[0]["ws"].send('{"type":"sync_request","from":"server"}')
        frames = await server.frames(0, 2)
        line = await proc.expect(lambda text: text.startswith("MSG") and "sync_request" in text)
    assert json.loads(line[4:]) == {"type": "sync_request", "from": "server"}
    assert frames[1] == {"type": "status", "state": "charging", "session_id": 42, "wh": 1000}


async def test_server_messages_reach_the_handler_and_junk_does_not_drop_the_link(server):
    async with charger(config(server.port)) as proc:
        await server.frames(0, 1)
        ws = server.conns[0]["ws"]
        await ws.send("not json")
        await ws.send('["a list"]')
        await ws.send(b"\x00binary")
        await ws.send('{"type":"start","session_id":123,"user_name":"Juan P\\u00e9rez"}')
        line = await proc.expect("MSG")
        proc.send("send 04A1B2C3")
        await proc.expect("SENT True")
        frames = await server.frames(0, 2)
    assert json.loads(line[4:]) == {"type": "start", "session_id": 123, "user_name": "Juan Pérez"}
    assert frames[1] == {"type": "nfc_scan", "nfc_uid": "04A1B2C3"}
    assert len(server.conns) == 1


async def test_wifi_loss_drops_the_link_and_wifi_back_reconnects_with_the_outbox(server):
    async with charger(config(server.port)) as proc:
        await proc.expect("LINK True")
        await server.frames(0, 1)
        proc.send("wifi down")
        await proc.expect("LINK False")
        await server.wait(lambda: server.conns[0]["closed"])
        proc.send("send 04A1B2C3")  # nfc_scan is pointless later: refused
        await proc.expect("SENT False")
        proc.send("put 2")
        await proc.expect("wifi not connected")  # no TCP attempt without WiFi
        assert len(server.conns) == 1
        proc.send("wifi up")
        frames = await server.frames(1, 3)
        await proc.expect("LINK True")
    assert frames[0]["type"] == "status" and metrics_ts(frames[1:]) == [1, 2]
    assert all(f["type"] != "nfc_scan" for c in server.conns for f in c["frames"])


async def test_a_configuration_close_code_makes_the_link_wait_the_longest_backoff(server):
    async def reject(ws):
        await ws.close(4005, "Estacion no encontrada")

    server.on_connect = reject
    async with charger(config(server.port, backoff_max_s=2)) as proc:
        await proc.expect("closed 4005 Estacion no encontrada")
        await proc.expect("reconnect in")
    waits = [int(m) for m in re.findall(r"reconnect in (\d+) ms", proc.output())]
    assert waits[0] >= 1500, proc.output()  # 2 s -25 %, not the 50 ms first step


async def test_with_several_server_urls_a_failed_connect_moves_to_the_next_one(server):
    dead = Recorder()
    await dead.start()
    await dead.stop()  # its port now refuses connections
    urls = ["ws://127.0.0.1:%d/ws" % dead.port, "ws://127.0.0.1:%d/ws" % server.port]
    cfg = config(server.port, server_urls=urls)
    del cfg["server_url"]
    async with charger(cfg, preload=2) as proc:
        frames = await server.frames(0, 3)  # the first URL refused: the second has it all
        await proc.expect("LINK True")
        assert server.conns[0]["path"] == "/ws?role=publisher&estacionId=3&token=tok%20en%2F1"
        assert frames[0]["type"] == "status" and metrics_ts(frames[1:]) == [1, 2]
        await dead.start()  # the first server comes back, the second goes away:
        await server.stop()  # round the list to the first one
        await proc.expect("LINK False")
        proc.send("put 1")
        frames = await dead.frames(0, 2)
        await proc.expect("LINK True")
    await dead.stop()
    assert frames[0]["type"] == "status" and metrics_ts(frames[1:]) == [3]
    assert "reconnect in" in proc.output() and "to 127.0.0.1 %d" % dead.port in proc.output()


async def test_the_outbox_keeps_the_newest_readings_when_offline_too_long(server):
    await server.stop()
    async with charger(config(server.port), readings=4) as proc:
        await proc.expect("reconnect in")
        proc.send("put 10")
        proc.send("stop 7")
        await proc.expect("DONE stop 7")
        await server.start()
        frames = await server.frames(0, 6)
    assert frames[0]["type"] == "status"
    assert metrics_ts(frames[1:5]) == [7, 8, 9, 10] and frames[5]["type"] == "stop"


def test_a_bad_link_config_is_a_clear_error():
    from tests.firmware.mpy import run_mpy

    out = run_mpy("""
from charger.link import Link
from charger.outbox import Outbox
for cfg in ({"server_url": "http://x/ws", "station": 1},
            {"server_url": "ws://x/ws", "station": "1"},
            {"server_url": "ws://x/ws", "station": 1, "backoff_max_s": -1},
            {"server_url": "ws://x/ws", "station": 1, "backoff_min_s": 5, "backoff_max_s": 2},
            {"server_url": "ws://x:99999/ws", "station": 1},
            {"server_url": "ws://x/ws", "station": 1, "max_message": "4096"},
            {"server_url": "ws://x/ws", "station": 1, "ack_timeout_s": 0}):
    try:
        Link(cfg, None, Outbox())
        print("ACCEPTED")
    except ValueError as e:
        print("ERR", e)
import sys
Link({"server_url": "ws://x/ws", "station": 1}, None, Outbox())
print("SETUP CODE LOADED", "charger.linkcfg" in sys.modules or "charger.wsopen" in sys.modules)
""")
    assert "ACCEPTED" not in out
    assert "ERR URL must start with ws:// or wss://" in out
    assert "ERR station must be a positive integer" in out
    assert "ERR backoff_max_s must be a number" in out
    assert "ERR backoff_max_s must not be below backoff_min_s" in out
    assert "ERR bad host or port in URL: 'ws://x:99999/ws?role=publisher&estacionId=1'" in out
    assert "ERR max_message must be a whole number from 128 to 65536" in out
    assert "ERR ack_timeout_s must be a number from 0.1 to 3600" in out
    assert "SETUP CODE LOADED False" in out  # issue 3: checked once, then dropped


async def test_a_silent_half_open_server_is_detected_by_pings_and_the_link_reconnects():
    from tests.firmware.test_wsclient import RawServer, go_silent

    async with RawServer(go_silent) as raw:
        cfg = config(raw.port, ping_interval_s=0.2, ping_timeout_s=0.3)
        async with charger(cfg) as proc:
            await proc.expect("LINK True")
            await proc.expect("closed 1006 no pong within 300 ms")
            await proc.expect("LINK False")
            for _ in range(2):  # the first connection and the reconnect
                assert await asyncio.wait_for(raw.events.get(), 30) == "connection"


async def test_entries_swallowed_by_a_half_open_link_are_sent_again_after_the_reconnect():
    from tests.firmware.test_wsclient import RawServer, frame, read_frame

    connections = []

    async def swallow_then_behave(reader, writer, events):
        connections.append(True)
        first = len(connections) == 1
        while True:
            op, data, _ = await read_frame(reader)
            if op == 9 and not first:
                writer.write(frame(10, data))  # only the second connection answers pings
            elif op == 1:
                await events.put((len(connections), json.loads(data)))
                # (no ack on either: the keepalive, not the missing ack, ends the first)

    async with RawServer(swallow_then_behave) as raw:
        cfg = config(raw.port, ping_interval_s=5, ping_timeout_s=0.5)
        async with charger(cfg) as proc:
            await proc.expect("LINK True")
            proc.send("put 3")  # written into a link that reads but
            await proc.expect("LINK False")  # never answers: no pong, no ack
            got = []
            while sum(1 for conn, _ in got if conn == 2) < 4:  # status + 3 readings
                got.append(await asyncio.wait_for(raw.events.get(), 30))
    second = [msg for conn, msg in got if conn == 2]
    first = [msg for conn, msg in got if conn == 1]
    assert metrics_ts(first) == [1, 2, 3]  # they did go out the first time
    assert second[0]["type"] == "status" and metrics_ts(second[1:]) == [1, 2, 3]


# ---- acknowledged delivery: an entry leaves the outbox only when an ack covers it ----------


async def settled(server, proc, conn):
    """Let the charger handle every frame sent to it so far: a sync_request is answered only
    after the frames before it (one receive task, in order); its `status` is then waited
    for. Returns the charger's `LEN outbox unconfirmed` line asked right after."""
    before = len(server.conns[conn]["frames"])
    await server.conns[conn]["ws"].send('{"type":"sync_request","from":"server"}')
    await server.frames(conn, before + 1)
    assert server.conns[conn]["frames"][before]["type"] == "status"
    proc.send("len")
    return await proc.expect("LEN")


async def wait_len(proc, text):
    for _ in range(300):
        proc.send("len")
        if await proc.expect("LEN") == text:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the outbox never became %r:\n%s" % (text, proc.output()))


async def test_a_pong_confirms_nothing_only_an_ack_covering_the_entries_releases_them():
    # issue 10, case 7: a pong only proves the WebSocket layer read the frames, not that the
    # server committed them. Pings are answered here (every 100 ms idle), acks withheld.
    from tests.firmware.test_wsclient import RawServer, frame, read_frame

    async def pongs_no_acks(reader, writer, events):
        while True:
            op, data, _ = await read_frame(reader)
            if op == 9:
                writer.write(frame(10, data))
                await events.put("pong")
            elif op == 1:
                await events.put(json.loads(data))
                if json.loads(data)["type"] == "status":
                    await events.put(writer)

    async with RawServer(pongs_no_acks) as raw:
        cfg = config(raw.port, wifi=None, ping_interval_s=0.1, ping_timeout_s=5)
        async with charger(cfg) as proc:
            await proc.expect("LINK True")
            proc.send("put 3")
            got = []
            while (
                sum(1 for e in got if e == "pong") < 3
                or len([e for e in got if isinstance(e, dict)]) < 4
            ):
                got.append(await asyncio.wait_for(raw.events.get(), 30))
            writer = next(e for e in got if not isinstance(e, (str, dict)))
            # three pongs after the readings went out: still in the outbox, sent
            proc.send("len")
            assert await proc.expect("LEN") == "LEN 3 3"
            writer.write(frame(1, b'{"type":"ack","n":4}'))  # status + 3 readings
            await wait_len(proc, "LEN 0 0")
    frames = [e for e in got if isinstance(e, dict)]
    assert frames[0]["type"] == "status" and metrics_ts(frames[1:]) == [1, 2, 3]


async def test_frames_sent_outside_the_outbox_are_counted_so_an_ack_means_the_servers_count(server):
    # The server counts every data frame it read: the status, an nfc_scan (send_now, as the
    # status after a local reset), the answer to sync_request. A charger that counted only
    # its outbox entries would take ack 3 for its reading (its 2nd frame) and drop it.
    server.acks = False
    async with charger(config(server.port)) as proc:
        await proc.expect("LINK True")
        proc.send("send 04A1B2C3")  # frame 2
        await proc.expect("SENT True")
        await server.frames(0, 2)
        assert await settled(server, proc, 0) == "LEN 0 0"  # sync answer: frame 3
        proc.send("put 1")  # frame 4
        frames = await server.frames(0, 4)
        await server.ack(0, 3)
        assert await settled(server, proc, 0) == "LEN 1 1"  # frame 5: ack 3 is not enough
        await server.ack(0, 4)
        await wait_len(proc, "LEN 0 0")
    assert [f["type"] for f in frames] == ["status", "nfc_scan", "status", "metrics", "status"]


async def test_an_ack_covering_part_of_a_batch_releases_nothing_until_the_batch_is_covered(server):
    # release per batch (charger/link.py): status is frame 1, the readings 2..4, the stop 5
    server.acks = False
    async with charger(config(server.port), preload=3) as proc:
        await proc.expect("LINK True")
        await server.frames(0, 4)
        await server.ack(0, 3)  # status and 2 of the 3 readings
        assert await settled(server, proc, 0) == "LEN 3 3"
        await server.ack(0, 4)
        await wait_len(proc, "LEN 0 0")
        proc.send("stop 7")  # the next batch: frame 6 (5: the sync answer)
        frames = await server.frames(0, 6)
        await server.ack(0, 5)
        assert await settled(server, proc, 0) == "LEN 1 1"
        await server.ack(0, 6)
        await wait_len(proc, "LEN 0 0")
    assert [f["type"] for f in frames] == [
        "status",
        "metrics",
        "metrics",
        "metrics",
        "status",
        "stop",
        "status",
    ]


async def test_entries_not_acked_when_the_connection_ends_go_again_after_the_status(server):
    # the server read them (pongs too: websockets answers the keepalive) but acked only the
    # status and the first reading before it went away: the whole batch goes again, in order,
    # then the stop that waited behind it
    server.acks = False
    async with charger(config(server.port, ping_interval_s=0.2)) as proc:
        await proc.expect("LINK True")
        proc.send("put 3")
        await server.frames(0, 4)
        proc.send("stop 7")  # waits: a batch is in flight
        await server.ack(0, 2)
        assert await settled(server, proc, 0) == "LEN 4 3"
        server.acks = True  # the next connection acks every frame
        await server.conns[0]["ws"].close(1001, "going away")
        again = await server.frames(1, 5)
        await wait_len(proc, "LEN 0 0")
    first = server.conns[0]["frames"]
    assert [f["type"] for f in first] == ["status", "metrics", "metrics", "metrics", "status"]
    assert again[0]["type"] == "status"
    assert again[1:4] == first[1:4]  # the same entries, in the same order
    assert again[4] == {"type": "stop", "session_id": 7, "wh": 555, "ts": 1700000003}
    assert len(again) == 5 and len(server.conns) == 2


async def test_a_live_link_without_acks_keeps_the_entries_under_the_outbox_bound(server):
    # the server's disk is failing: it reads and answers pings but commits nothing. The link
    # stays up and loses nothing beyond the outbox's rule (oldest reading dropped first);
    # once acks come, the newest readings and the stop are delivered on the same connection.
    server.acks = False
    async with charger(config(server.port, ping_interval_s=0.1), readings=4) as proc:
        await proc.expect("LINK True")
        proc.send("put 3")  # sent (frames 2..4), never acked
        await server.frames(0, 4)
        proc.send("put 5")  # 8 readings for 4 places: 1..4 dropped
        proc.send("stop 7")
        await proc.expect("DONE stop 7")
        assert await settled(server, proc, 0) == "LEN 5 0"  # 5..8 and the stop, unsent yet
        server.acks = True
        await server.ack(0, 5)  # covers the first batch (gone by now)
        frames = await server.frames(0, 10)
        await wait_len(proc, "LEN 0 0")
    assert len(server.conns) == 1 and len(frames) == 10
    assert metrics_ts(frames[1:4]) == [1, 2, 3] and frames[4]["type"] == "status"
    assert metrics_ts(frames[5:9]) == [5, 6, 7, 8] and frames[9]["type"] == "stop"


async def test_a_batch_unacked_for_ack_timeout_s_makes_the_link_reconnect_and_replay(server):
    # the real server never acks a connection again once one of its frames could not be
    # committed (server/acks.py): after ack_timeout_s the charger closes (1001) and
    # reconnects; the new connection counts from 1 and gets the same entries again
    server.acks = False
    async with charger(config(server.port, ack_timeout_s=0.5), preload=2) as proc:
        await server.frames(0, 3)
        await server.ack(0, 2)  # part of the batch only
        server.acks = True  # (no more frames come on this one)
        await proc.expect("lost (1001, 'no ack')")
        again = await server.frames(1, 3)
        await wait_len(proc, "LEN 0 0")
    await server.wait(lambda: server.conns[0]["closed"])
    assert server.conns[0]["ws"].close_code == 1001
    assert again[0]["type"] == "status" and metrics_ts(again[1:3]) == [1, 2]
    assert again[1:3] == server.conns[0]["frames"][1:3]


async def test_a_bad_ack_is_ignored_and_releases_nothing(server):
    server.acks = False
    async with charger(config(server.port), preload=1) as proc:
        await server.frames(0, 2)
        for bad in (
            '{"type":"ack","n":99}',
            '{"type":"ack","n":"2"}',
            '{"type":"ack"}',
            '{"type":"ack","n":true}',
            '{"type":"ack","n":2.0}',
            '{"type": "ack", "n": 99}',
            '{"n":99,"type":"ack"}',
        ):
            await server.conns[0]["ws"].send(bad)
        assert await settled(server, proc, 0) == "LEN 1 1"
        await server.conns[0]["ws"].send('{"n": 2, "type": "ack"}')  # valid, keys swapped
        await wait_len(proc, "LEN 0 0")
    assert '"ack"' not in proc.output()  # acks are the link's, not the handler's
    assert proc.output().count("ignored ack") == 7


HEAP_DRIVER = r"""
import asyncio, gc, json, os, sys
from charger import messages
from charger.link import Link
from charger.outbox import Outbox

downs = [0]

class Handler:
    def status_messages(self):
        return [messages.status("idle", None, 1000)]
    def on_message(self, msg):
        pass
    def on_link(self, up):
        if not up:  # the connection is gone and closed; the link is about to back off
            downs[0] += 1
            gc.collect()
            print("HEAP", downs[0], gc.mem_alloc())
            if downs[0] == 6:
                sys.exit(0)

link = Link(json.loads(os.getenv("LINK_CFG")), Handler(), Outbox())
asyncio.run(link.run())
"""


async def test_reconnects_retain_nothing_the_live_heap_is_the_same_after_1_and_5():
    # issue 3: a charger reconnects for years; anything a connection leaves behind (an old
    # socket, stream, task, an exception with its traceback) would grow the heap until a
    # MemoryError. The server closes every connection, with a close frame or by dropping
    # TCP in turn; the heap is sampled at each link-down after gc.collect() (deterministic
    # figures: the same objects are live at the same point of every cycle).
    async def close_or_drop(ws):
        await ws.recv()  # the status
        if len(server.conns) % 2:
            await ws.close(1000)
        else:
            ws.transport.abort()

    server = Recorder()
    server.on_connect = close_or_drop
    await server.start()
    try:
        cfg = config(server.port, wifi=None, backoff_min_s=0.01, backoff_max_s=0.02)
        async with MpyProcess(HEAP_DRIVER, env={"LINK_CFG": json.dumps(cfg)}) as proc:
            assert await proc.wait_exit(60) == 0, proc.output()
    finally:
        await server.stop()
    heap = {int(n): int(b) for n, b in re.findall(r"HEAP (\d) (\d+)", proc.output())}
    assert len(heap) == 6, proc.output()
    # after 1 reconnect (down 2) vs after 5 (down 6), both after a dropped TCP connection:
    # a leak of one 32-byte GC block per reconnect would show as 4 x 32 = 128 bytes
    assert abs(heap[6] - heap[2]) < 128, heap
    assert abs(heap[5] - heap[3]) < 128, heap  # the same after a closing handshake


WAKEUP_DRIVER = r"""
import asyncio, json, os
from charger import messages
from charger.link import Link
from charger.outbox import Outbox

steps = [0]

class Counted:
    # the link task's coroutine, each resumption (asyncio wake-up) counted
    def __init__(self, coro):
        self.coro = coro
    def send(self, value):
        steps[0] += 1
        return self.coro.send(value)
    def throw(self, exc):
        steps[0] += 1
        return self.coro.throw(exc)

class Handler:
    def status_messages(self):
        return [messages.status("charging", 7, 1000)]
    def on_message(self, msg):
        pass
    def on_link(self, up):
        if up:
            asyncio.create_task(readings())

outbox = Outbox()
link = Link(json.loads(os.getenv("LINK_CFG")), Handler(), outbox)

async def readings():
    for i in range(1, 6):
        before = steps[0]
        outbox.put_reading(7, 230.0, 16.0, 3680.0, 1000 + i, 1764150000 + i)
        link.notify()
        while len(outbox):  # delivered and confirmed
            await asyncio.sleep_ms(50)
        print("STEPS", i, steps[0] - before)
    print("DONE")

async def main():
    asyncio.create_task(Counted(link.run()))
    while True:
        await asyncio.sleep(1)

asyncio.run(main())
"""


async def test_a_reading_wakes_the_link_twice_however_late_the_servers_ack_comes():
    # issue 3 (allocation per metrics cycle): every asyncio wake-up allocates, so the link
    # must not poll for its delivery confirmation: one wake-up for the queued reading, one
    # for the ack that covers it, even when the server acks 300 ms later (a commit), and
    # none for an ack that covers only the frames before it (the status).
    from tests.firmware.test_wsclient import RawServer, frame, read_frame

    async def slow_acks(reader, writer, events):
        count = 0
        while True:
            op, data, _ = await read_frame(reader)
            if op == 9:
                writer.write(frame(10, data))
            elif op == 1:
                count += 1
                await events.put(json.loads(data))
                if count > 1:  # a reading: first an ack of the frames before it
                    writer.write(frame(1, b'{"type":"ack","n":%d}' % (count - 1)))
                await asyncio.sleep(0.3)
                writer.write(frame(1, b'{"type":"ack","n":%d}' % count))

    async with RawServer(slow_acks) as raw:
        cfg = config(raw.port, wifi=None, ping_interval_s=20, ping_timeout_s=10)
        async with MpyProcess(WAKEUP_DRIVER, env={"LINK_CFG": json.dumps(cfg)}) as proc:
            await proc.expect("DONE")
    steps = [int(n) for n in re.findall(r"STEPS \d (\d+)", proc.output())]
    assert len(steps) == 5, proc.output()
    assert max(steps) <= 2, steps  # polling every 20 ms for the ack would be ~15


def test_the_token_costs_no_interned_name_per_character():
    """A board's token of many distinct characters once interned one name per character
    (62 for an alphanumeric one), for good: enough to push the firmware past the qstr pool's
    300 names and its next 3.5 KB chunk (docs/architecture.md "Firmware memory rules")."""
    from tests.firmware.mpy import run_mpy

    out = run_mpy("""
import micropython
from charger import linkcfg
def names():
    micropython.qstr_info()
cfg = {"server_url": "ws://x/ws", "station": 3, "token": "a b"}
print("URL", linkcfg.settings(cfg)[0][0][0][2])  # the module's own names interned first
names()
cfg["token"] = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba9876543210/ +"
print("URL", linkcfg.settings(cfg)[0][0][0][2])
names()
""")
    urls = [line.split()[1] for line in out.splitlines() if line.startswith("URL")]
    assert urls == [
        "/ws?role=publisher&estacionId=3&token=a%20b",
        "/ws?role=publisher&estacionId=3&token=ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba"
        "9876543210%2F%20%2B",
    ]
    counts = re.findall(r"n_qstr=(\d+)", out)
    assert len(counts) == 2 and counts[0] == counts[1], out

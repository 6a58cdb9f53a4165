"""The link: frames from the server are validated before the charger sees them, the reconnect
backoff grows from 1 s to 30 s with jitter, and delivery is acknowledged (docs/protocol.md,
"Acknowledged delivery") against a real websockets server that acks as the spec says or holds
its acks back (tests/tools/ackserver.py)."""

import asyncio
import random

import pytest

from tests.tools.ackserver import AckServer
from tools.simulator.charger import CHARGING, Charger
from tools.simulator.clock import ManualClock
from tools.simulator.curve import ChargingModel
from tools.simulator.events import EventLog
from tools.simulator.link import BATCH, StationLink, backoff_delay

CARD = "VIRTUAL-1-A4F2E8"


def test_invalid_frames_are_logged_and_the_next_valid_one_still_works():
    lines = []
    log = EventLog(1, lines.append)
    charger = Charger(1, ChargingModel(ManualClock()), notify=log.emit)
    link = StationLink(charger, "ws://127.0.0.1:1/ws", log, random.Random(1))
    charger.connected()
    charger.tap("VIRTUAL-1-A4F2E8")
    for frame in (
        "not json",
        b"\x00\x01",
        "[1, 2]",
        '{"type": 5}',
        '{"type": "start"}',
        "{" * 5000,
    ):
        link._receive(frame)
    assert sum(" invalid " in line for line in lines) == 6
    link._receive('{"type": "start", "session_id": 3, "user_name": "Juan Pérez"}')
    assert charger.state == CHARGING
    assert lines[-1] == '[st1] started session_id=3 user_name="Juan Pérez" relay=on'


def test_backoff_doubles_from_one_second_up_to_thirty_with_jitter():
    rng = random.Random(3)
    delays = [backoff_delay(attempt, rng) for attempt in range(10)]
    assert 1.0 <= delays[0] <= 1.25
    assert 1.5 <= delays[1] <= 2.5 and 3.0 <= delays[2] <= 5.0
    assert all(22.5 <= d <= 30.0 for d in delays[5:])
    assert len({round(backoff_delay(4, rng), 3) for _ in range(20)}) > 10  # jittered
    assert backoff_delay(10_000, rng) <= 30.0


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "null"),
        ("Juan Pérez", '"Juan Pérez"'),
        ("VIRTUAL-1", "VIRTUAL-1"),
        (3, "3"),
        (True, "true"),
        (230.5, "230.5"),
    ],
)
def test_event_line_values_are_greppable(value, text):
    lines = []
    EventLog(2, lines.append).emit("x", {"k": value})
    assert lines == [f"[st2] x k={text}"]


# --- acknowledged delivery ----------------------------------------------------------------------
class LinkRig:
    """A charger (its clock stepped by the test) and its link to `url`."""

    def __init__(self, url, **link_args):
        self.clock = ManualClock()
        self.lines = []
        self.log = EventLog(1, self.lines.append)
        self.model = ChargingModel(self.clock, rng=random.Random(1), register_wh=1000)
        self.charger = Charger(1, self.model, monotonic=self.clock.now, notify=self.log.emit)
        self.link = StationLink(
            self.charger, url, self.log, random.Random(1), tick_s=0.02, **link_args
        )

    async def __aenter__(self):
        self.link.start()
        return self

    async def __aexit__(self, *exc):
        await self.link.close()

    def readings(self, n, step=3.0):
        """Let `n` metrics intervals pass."""
        for _ in range(n):
            self.clock.advance(step)
            self.charger.tick()
        self.link.wake()

    async def charging(self, server):
        await server.wait_for(lambda s: s.frames(kind="status"))
        self.charger.tap(CARD)
        self.link.wake()
        await server.wait_for(lambda s: s.frames(kind="metrics"))  # the start's baseline


async def until(condition, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def settle():
    """Let the link's tasks run (no I/O in between: a few loop turns are enough)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_entry_leaves_the_outbox_only_when_an_ack_covers_it_a_pong_confirms_nothing():
    async with AckServer(auto_ack=False) as server, LinkRig(server.url) as rig:
        await rig.charging(server)
        assert [f["type"] for f in server.frames()] == ["status", "nfc_scan", "metrics"]
        await server.round_trip()
        await server.round_trip()  # the charger's pings were answered long since
        assert len(rig.charger.outbox) == 1  # sent, not acknowledged: kept
        await server.ack(2)  # the status and the nfc_scan, not the reading (frame 3)
        await until(lambda: rig.link.acked == 2)
        await settle()
        assert len(rig.charger.outbox) == 1
        await server.ack(3)
        await until(lambda: len(rig.charger.outbox) == 0)
        assert rig.lines[-2:] == ["[st1] <- ack n=3", "[st1] delivered entries=1 pending=0"]


async def test_unacknowledged_entries_go_again_in_order_right_after_the_next_status():
    async with AckServer(auto_ack=False) as server, LinkRig(server.url) as rig:
        await rig.charging(server)
        rig.readings(2)  # queued behind the unacknowledged baseline
        first = server.frames(kind="metrics")
        await server.round_trip()
        server.cut()  # no ack ever came on this connection
        await server.wait_for(lambda s: len(s.connections) == 2 and len(s.frames()) == 4)
        again = server.frames()
        assert again[0] == {
            "type": "status",
            "fw": "simulator",
            "state": "charging",
            "session_id": 7,
            "wh": rig.charger.sm.wh,
        }
        assert again[1] == first[0]  # the same text: the server ignores the duplicate
        ts = [f["ts"] for f in again[1:]]
        assert ts == sorted(ts) and len(set(ts)) == 3
        await server.ack(4)
        await until(lambda: len(rig.charger.outbox) == 0)
        assert "[st1] replayed n=3" in rig.lines


async def test_a_replay_goes_in_batches_each_released_by_its_ack_none_lost_none_twice():
    async with AckServer(auto_ack=False) as server, LinkRig(server.url) as rig:
        await rig.charging(server)
        await server.ack(3)
        await until(lambda: len(rig.charger.outbox) == 0)
        rig.link.drop()
        await server.wait_for(lambda s: not s.open)
        rig.readings(40)
        assert rig.charger.outbox.readings == 40
        rig.link.reconnect()
        await server.wait_for(lambda s: len(s.connections) == 2 and len(s.frames()) == 1 + BATCH)
        await server.round_trip()
        await settle()
        assert len(server.frames()) == 1 + BATCH  # the next batch waits for this one's ack
        await server.ack(1 + BATCH)
        await server.wait_for(lambda s: len(s.frames()) == 1 + 2 * BATCH)
        assert len(rig.charger.outbox) == 40 - BATCH
        server.auto_ack = True
        await server.ack(1 + 2 * BATCH)
        await until(lambda: len(rig.charger.outbox) == 0)
        replay = server.frames(kind="metrics")
        ts = [f["ts"] for f in replay]
        assert len(replay) == 40 and ts == sorted(set(ts))


async def test_a_server_that_stops_acking_keeps_the_link_and_loses_nothing():
    async with AckServer(auto_ack=False) as server, LinkRig(server.url) as rig:
        await rig.charging(server)
        rig.readings(5)
        await until(lambda: rig.charger.outbox.readings == 6)
        await server.round_trip()  # the link is alive: pings are answered, nothing released
        assert len(server.connections) == 1 and rig.link.online
        await server.ack(3)  # the server's disk is back: the next batch goes
        await server.wait_for(lambda s: len(s.frames(kind="metrics")) == 6)
        await server.ack(8)
        await until(lambda: len(rig.charger.outbox) == 0)


async def test_a_batch_unacked_for_the_ack_timeout_closes_with_1001_and_goes_again():
    async with AckServer(auto_ack=False) as server, LinkRig(server.url, ack_timeout_s=0.5) as rig:
        await rig.charging(server)
        [reading] = server.frames(kind="metrics")
        await server.wait_for(lambda s: len(s.connections) == 2 and s.frames(kind="metrics"))
        assert server.close_codes[0] == 1001
        assert server.frames(kind="metrics") == [reading]  # sent again, right after the status
        assert '[st1] offline code=1001 reason="no ack of frame 3 within 0.5 s"' in rig.lines


@pytest.mark.parametrize(
    "ack",
    [
        {"type": "ack", "n": 4},
        {"type": "ack", "n": "3"},
        {"type": "ack", "n": True},
        {"type": "ack", "n": -1},
        {"type": "ack", "n": 2.5},
        {"type": "ack"},
    ],
)
async def test_a_bad_ack_is_logged_and_releases_nothing(ack):
    async with AckServer(auto_ack=False) as server, LinkRig(server.url) as rig:
        await rig.charging(server)
        await server.send(ack)
        await until(lambda: any(" invalid " in line for line in rig.lines))
        await settle()
        assert len(rig.charger.outbox) == 1 and rig.link.acked == 0
        await server.ack(3)  # the link goes on
        await until(lambda: len(rig.charger.outbox) == 0)

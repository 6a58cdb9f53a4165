"""The link's pure parts: frames from the server are validated before the charger sees them,
and the reconnect backoff grows from 1 s to 30 s with jitter."""

import random

import pytest

from tools.simulator.charger import CHARGING, Charger
from tools.simulator.clock import ManualClock
from tools.simulator.curve import ChargingModel
from tools.simulator.events import EventLog
from tools.simulator.link import StationLink, backoff_delay


def test_invalid_frames_are_logged_and_the_next_valid_one_still_works():
    lines = []
    log = EventLog(1, lines.append)
    charger = Charger(1, ChargingModel(ManualClock()), notify=log.emit)
    link = StationLink(charger, "ws://127.0.0.1:1/ws", log, random.Random(1))
    charger.connected()
    charger.tap("VIRTUAL-1-A4F2E8")
    for frame in ("not json", b"\x00\x01", "[1, 2]", '{"type": 5}', '{"type": "start"}', "{" * 5000):
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


@pytest.mark.parametrize("value, text", [
    (None, "null"), ("Juan Pérez", '"Juan Pérez"'), ("VIRTUAL-1", "VIRTUAL-1"), (3, "3"),
    (True, "true"), (230.5, "230.5"),
])
def test_event_line_values_are_greppable(value, text):
    lines = []
    EventLog(2, lines.append).emit("x", {"k": value})
    assert lines == [f"[st2] x k={text}"]

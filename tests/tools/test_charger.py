"""One charger's protocol rules without sockets: events in, frames out (what the link would
send: the frames sent at once, then the outbox, all acknowledged)."""

import json
import random

import pytest

from tools.simulator.charger import CHARGING, FAULT, IDLE, WAITING, Charger
from tools.simulator.clock import ManualClock
from tools.simulator.curve import ChargingModel

CARD = "VIRTUAL-1-A4F2E8"
METRICS_FIELDS = {"type", "session_id", "v", "a", "w", "wh", "ts"}


class Rig:
    """A charger whose simulated and protocol clocks are stepped together by `advance`."""

    def __init__(self, interval=3.0, max_readings=200, register_wh=1000, clock=None):
        self.clock = clock or ManualClock()
        self.notes = []
        self.model = ChargingModel(self.clock, rng=random.Random(1), register_wh=register_wh)
        self.charger = Charger(
            1,
            self.model,
            metrics_interval_s=interval,
            max_readings=max_readings,
            monotonic=self.clock.now,
            notify=lambda event, fields: self.notes.append((event, fields)),
        )

    def advance(self, seconds, step=0.5):
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)
            self.charger.tick()

    def sent(self):
        """What the link would send now, every entry acknowledged (only meaningful online)."""
        frames = []
        while (text := self.charger.take_now()) is not None:
            frames.append(json.loads(text))
        while (text := self.charger.outbox.next_unsent()) is not None:
            frames.append(json.loads(text))
        self.charger.outbox.confirm()
        return frames

    def queued(self):
        """The outbox's entries, oldest first, left in it."""
        frames = []
        while (text := self.charger.outbox.next_unsent()) is not None:
            frames.append(json.loads(text))
        self.charger.outbox.rewind()
        return frames

    def events(self):
        return [event for event, _ in self.notes]

    def online(self):
        return [json.loads(text) for text in self.charger.connected()] + self.sent()

    def charging(self, session_id=5):
        self.online()
        self.charger.tap(CARD)
        self.sent()
        self.charger.receive({"type": "start", "session_id": session_id, "user_name": "Juan Pérez"})
        self.sent()


def types(messages):
    return [m["type"] for m in messages]


def test_status_idle_with_the_register_right_after_connect():
    rig = Rig(register_wh=4321)
    assert rig.online() == [
        {"type": "status", "fw": "simulator", "state": "idle", "session_id": None, "wh": 4321}
    ]


def test_tap_sends_nfc_scan_and_waits_for_start():
    rig = Rig()
    rig.online()
    rig.charger.tap(CARD)
    assert rig.sent() == [{"type": "nfc_scan", "nfc_uid": CARD}]
    assert rig.charger.state == WAITING


def test_start_closes_the_relay_and_reports_the_starting_register():
    rig = Rig(register_wh=1000)
    rig.online()
    rig.charger.tap(CARD)
    rig.sent()
    rig.charger.receive({"type": "start", "session_id": 5, "user_name": "Juan Pérez"})
    assert rig.charger.state == CHARGING and rig.model.relay_on
    [first] = rig.sent()
    assert set(first) == METRICS_FIELDS and first["session_id"] == 5 and first["wh"] == 1000
    assert ("started", {"session_id": 5, "user_name": "Juan Pérez", "relay": "on"}) in rig.notes


def test_metrics_every_interval_with_the_seed_fields_and_a_rising_register():
    rig = Rig(interval=3.0)
    rig.charging()
    rig.advance(30)
    readings = rig.sent()
    assert len(readings) == 10
    for reading in readings:
        assert set(reading) == METRICS_FIELDS and reading["type"] == "metrics"
        assert reading["session_id"] == 5 and isinstance(reading["ts"], int)
        assert reading["a"] == 32.0 and 220 < reading["v"] < 240
        assert reading["w"] == pytest.approx(reading["v"] * reading["a"], rel=0.001)
    assert [r["ts"] for r in readings] == sorted({r["ts"] for r in readings})
    registers = [r["wh"] for r in readings]
    assert registers == sorted(registers) and registers[-1] > registers[0] + 50


def test_no_start_within_10_seconds_returns_to_idle():
    rig = Rig()
    rig.online()
    rig.charger.tap(CARD)
    rig.advance(9.5)
    assert rig.charger.state == WAITING
    rig.advance(1)
    assert rig.charger.state == IDLE and not rig.model.relay_on


def test_error_after_a_tap_returns_to_idle_and_is_noted_with_its_code():
    rig = Rig()
    rig.online()
    rig.charger.tap("UNKNOWN-CARD")
    error = {"type": "error", "message": "Tarjeta no registrada", "code": "CARD_UNKNOWN"}
    rig.charger.receive(error)
    assert rig.charger.state == IDLE
    assert ("<-", error) in rig.notes


def test_error_while_charging_does_not_cut_the_charge():
    rig = Rig()
    rig.charging()
    rig.charger.receive({"type": "error", "message": "bad frame", "code": "INVALID_MESSAGE"})
    assert rig.charger.state == CHARGING and rig.model.relay_on


def test_stop_button_opens_the_relay_then_sends_stop_with_the_final_register():
    rig = Rig()
    rig.charging()
    rig.advance(10)
    rig.sent()
    rig.charger.press_stop()
    [stop] = rig.sent()  # the firmware reads the meter once more; the stop carries it
    assert not rig.model.relay_on and rig.charger.state == IDLE
    assert set(stop) == {"type", "session_id", "wh", "ts"}
    assert stop["type"] == "stop" and stop["session_id"] == 5
    assert stop["wh"] == rig.model.register_wh
    assert ("stopped", {"session_id": 5, "reason": "stop_button", "relay": "off"}) in rig.notes
    rig.advance(10)
    assert rig.sent() == []  # no metrics after the session


def test_server_stop_opens_the_relay_without_answering():
    rig = Rig()
    rig.charging()
    rig.charger.receive({"type": "stop", "session_id": 5})
    assert not rig.model.relay_on and rig.charger.state == IDLE
    assert rig.sent() == []


def test_server_stop_for_another_session_is_ignored():
    rig = Rig()
    rig.charging()
    rig.charger.receive({"type": "stop", "session_id": 99})
    assert rig.charger.state == CHARGING and rig.model.relay_on


def test_emergency_opens_the_relay_latches_fault_and_only_reset_leaves_it():
    rig = Rig()
    rig.charging()
    rig.charger.press_emergency()
    [emergency] = rig.sent()
    assert emergency["type"] == "emergency" and emergency["session_id"] == 5
    assert not rig.model.relay_on and rig.charger.state == FAULT
    rig.charger.tap(CARD)
    rig.charger.press_stop()
    rig.charger.receive({"type": "stop", "session_id": 5})
    assert rig.sent() == [] and rig.charger.state == FAULT
    rig.charger.press_reset()
    assert rig.charger.state == IDLE
    assert types(rig.sent()) == ["status"] and rig.charger.outbox.readings == 0


def test_emergency_without_a_session_reports_session_null():
    rig = Rig()
    rig.online()
    rig.charger.press_emergency()
    [emergency] = rig.sent()
    assert emergency["session_id"] is None
    rig.charger.disconnected()
    assert rig.online()[0] == {
        "type": "status",
        "fw": "simulator",
        "state": "fault",
        "session_id": None,
        "wh": rig.model.register_wh,
    }


def test_sync_request_answers_status_and_the_latest_reading_when_charging():
    rig = Rig()
    rig.charging()
    rig.advance(1)
    rig.charger.receive({"type": "sync_request", "from": "server"})
    status, reading = rig.sent()
    assert status == {
        "type": "status",
        "fw": "simulator",
        "state": "charging",
        "session_id": 5,
        "wh": reading["wh"],
    }
    assert reading["type"] == "metrics"


def test_unexpected_start_is_refused_with_a_stop():
    rig = Rig()
    rig.online()
    rig.charger.receive({"type": "start", "session_id": 8, "user_name": "X"})
    [stop] = rig.sent()
    assert stop["type"] == "stop" and stop["session_id"] == 8
    assert rig.charger.state == IDLE and not rig.model.relay_on


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "start"},
        {"type": "start", "session_id": "5"},
        {"type": "start", "session_id": True},
        {"type": "bogus"},
        {"type": "stop", "session_id": [1]},
    ],
)
def test_invalid_server_messages_are_noted_and_change_nothing(frame):
    rig = Rig()
    rig.online()
    rig.charger.tap(CARD)
    rig.sent()
    rig.charger.receive(frame)
    assert rig.charger.state == WAITING and rig.sent() == []


def test_offline_charging_keeps_readings_and_replays_them_after_status():
    rig = Rig()
    rig.charging()
    rig.charger.disconnected()
    rig.advance(16)
    assert rig.model.relay_on and rig.charger.outbox.readings == 5
    sent = rig.online()
    # the status alone first: the queued readings follow, no newer reading ahead of them
    assert types(sent) == ["status"] + ["metrics"] * 5
    assert sent[0]["state"] == "charging" and sent[0]["session_id"] == 5
    ts = [m["ts"] for m in sent[1:]]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert ("replayed", {"n": 5}) in rig.notes


def test_status_with_an_empty_outbox_repeats_the_latest_reading_for_the_dashboards():
    rig = Rig()
    rig.charging()
    rig.advance(4)
    [last] = rig.sent()
    rig.charger.disconnected()
    status, reading = rig.online()
    assert status == {
        "type": "status",
        "fw": "simulator",
        "state": "charging",
        "session_id": 5,
        "wh": reading["wh"],
    }
    # the latest queued `ts` again: a duplicate for the energy account, fresh numbers on screen
    assert reading["type"] == "metrics" and reading["ts"] == last["ts"]


def test_stop_while_offline_replays_readings_then_the_stop_and_no_second_status():
    rig = Rig()
    rig.charging()
    rig.advance(3)
    rig.sent()
    rig.charger.disconnected()
    rig.advance(9)
    rig.charger.press_stop()
    rig.advance(9)  # idle: nothing more to queue
    sent = rig.online()
    assert types(sent) == ["status"] + ["metrics"] * 3 + ["stop"]
    # the status describes the session as the server last knew it, so it resumes it, stores
    # the replay and ends it as local_stop; the firmware sends no second status after it
    assert sent[0] == {
        "type": "status",
        "fw": "simulator",
        "state": "charging",
        "session_id": 5,
        "wh": rig.model.register_wh,
    }
    assert sent[4]["session_id"] == 5 and sent[4]["wh"] == rig.model.register_wh
    # once the stop is delivered, the charger's own state again
    assert rig.online()[0] == {
        "type": "status",
        "fw": "simulator",
        "state": "idle",
        "session_id": None,
        "wh": rig.model.register_wh,
    }


def test_a_tap_cannot_be_reported_offline():
    rig = Rig()
    rig.charger.tap(CARD)
    assert rig.charger.state == IDLE and len(rig.charger.outbox) == 0


def test_a_tap_whose_scan_was_lost_with_the_link_ends_with_the_start_timeout():
    rig = Rig()
    rig.online()
    rig.charger.tap(CARD)
    rig.charger.disconnected()  # the nfc_scan never left
    rig.advance(9.5)
    assert rig.charger.state == WAITING
    rig.advance(1)
    assert rig.charger.state == IDLE and not rig.model.relay_on
    assert rig.online() == [
        {
            "type": "status",
            "fw": "simulator",
            "state": "idle",
            "session_id": None,
            "wh": rig.model.register_wh,
        }
    ]


def test_reboot_forgets_the_session_and_the_queue_but_keeps_the_register():
    rig = Rig()
    rig.charging()
    rig.advance(30)
    rig.charger.disconnected()
    rig.advance(6)
    register = rig.model.register_wh
    rig.charger.reboot()
    assert not rig.model.relay_on and rig.charger.session_id is None
    assert rig.online() == [
        {"type": "status", "fw": "simulator", "state": "idle", "session_id": None, "wh": register}
    ]


def test_ten_minutes_offline_ends_the_session_locally():
    rig = Rig(interval=30.0)
    rig.charging()
    rig.charger.disconnected()
    rig.advance(601, step=1)
    assert rig.charger.state == IDLE and not rig.model.relay_on
    stop = rig.queued()[-1]
    assert stop["type"] == "stop" and stop["reason"] == "offline_limit"
    assert stop["session_id"] == 5 and stop["wh"] == rig.model.register_wh


def test_a_long_outage_keeps_200_readings_the_newest_ones():
    rig = Rig(interval=1.0)
    rig.charging()
    rig.charger.disconnected()
    rig.advance(250)
    assert rig.charger.outbox.readings == 200
    rig.charger.press_stop()
    sent = rig.online()
    readings = [m for m in sent if m["type"] == "metrics"]
    assert len(readings) == 200 and types(sent)[-1] == "stop"
    # 250 periodic readings (one per second) were queued: the oldest 50 were dropped, so the
    # replay starts with the 51st
    assert readings[0]["ts"] == 1_780_000_051 and rig.charger.outbox.dropped == 50


def test_each_session_charges_a_new_car_from_the_plug_in_charge():
    rig = Rig()
    rig.charging(session_id=5)
    rig.advance(3600, step=5)
    assert rig.model.soc > 0.3
    rig.charger.press_stop()
    rig.charger.tap(CARD)
    rig.charger.receive({"type": "start", "session_id": 6, "user_name": "Juan Pérez"})
    assert rig.model.soc == pytest.approx(0.2) and rig.model.read().a == 32.0


def test_a_clock_before_2024_is_not_set_yet_and_no_ts_is_sent():
    rig = Rig(clock=ManualClock(start=1_600_000_000.0))  # September 2020
    rig.charging()
    rig.advance(3)
    [reading] = rig.sent()
    assert reading["type"] == "metrics" and "ts" not in reading
    rig.charger.press_stop()
    [stop] = rig.sent()
    assert stop == {"type": "stop", "session_id": 5, "wh": rig.model.register_wh}


def test_reset_outside_a_fault_is_ignored_and_never_stops_a_session():
    rig = Rig()
    rig.charging()
    rig.charger.press_reset()
    assert rig.charger.state == CHARGING and rig.model.relay_on
    assert ("ignored", {"reason": "reset while charging"}) in rig.notes


def test_emergency_survives_a_reboot_and_the_charger_reports_fault():
    rig = Rig()
    rig.charging()
    rig.charger.press_emergency()
    rig.sent()
    rig.charger.disconnected()
    rig.charger.reboot()
    assert rig.charger.state == FAULT and not rig.model.relay_on
    assert rig.online()[0]["state"] == "fault"
    rig.charger.tap(CARD)
    rig.charger.receive({"type": "start", "session_id": 6, "user_name": "X"})
    assert not rig.model.relay_on  # the start is refused with a stop
    assert rig.sent() == [
        {"type": "stop", "session_id": 6, "wh": rig.model.register_wh, "ts": int(rig.clock.now())}
    ]

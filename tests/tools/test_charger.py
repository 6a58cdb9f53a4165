"""One charger's protocol rules without sockets: events in, messages (the outbox) out."""

import random

import pytest

from tools.simulator.charger import CHARGING, FAULT, IDLE, WAITING, Charger
from tools.simulator.clock import ManualClock
from tools.simulator.curve import ChargingModel
from tools.simulator.outbox import Outbox

CARD = "VIRTUAL-1-A4F2E8"
METRICS_FIELDS = {"type", "session_id", "v", "a", "w", "wh", "ts"}


class Rig:
    """A charger whose simulated and protocol clocks are stepped together by `advance`."""

    def __init__(self, interval=3.0, max_readings=200, register_wh=1000):
        self.clock = ManualClock()
        self.notes = []
        self.model = ChargingModel(self.clock, rng=random.Random(1), register_wh=register_wh)
        self.charger = Charger(1, self.model, metrics_interval_s=interval,
                               max_readings=max_readings, monotonic=self.clock.now,
                               notify=lambda event, fields: self.notes.append((event, fields)))

    def advance(self, seconds, step=0.5):
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)
            self.charger.tick()

    def sent(self):
        """What the link would send now (only meaningful online)."""
        return self.charger.outbox.drain()

    def events(self):
        return [event for event, _ in self.notes]

    def online(self):
        self.charger.connected()
        return self.sent()

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
    assert rig.online() == [{"type": "status", "state": "idle", "session_id": None, "wh": 4321}]


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
    final, stop = rig.sent()
    assert not rig.model.relay_on and rig.charger.state == IDLE
    assert final["type"] == "metrics" and final["a"] == 0.0 and final["w"] == 0.0
    assert set(stop) == {"type", "session_id", "wh", "ts"}
    assert stop["type"] == "stop" and stop["session_id"] == 5
    assert stop["wh"] == final["wh"] == rig.model.register_wh
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
    rig.charger.connected()
    assert rig.sent()[0] == {"type": "status", "state": "fault", "session_id": None,
                             "wh": rig.model.register_wh}


def test_sync_request_answers_status_and_the_latest_reading_when_charging():
    rig = Rig()
    rig.charging()
    rig.advance(1)
    rig.charger.receive({"type": "sync_request", "from": "server"})
    status, reading = rig.sent()
    assert status == {"type": "status", "state": "charging", "session_id": 5,
                      "wh": reading["wh"]}
    assert reading["type"] == "metrics"


def test_unexpected_start_is_refused_with_a_stop():
    rig = Rig()
    rig.online()
    rig.charger.receive({"type": "start", "session_id": 8, "user_name": "X"})
    [stop] = rig.sent()
    assert stop["type"] == "stop" and stop["session_id"] == 8
    assert rig.charger.state == IDLE and not rig.model.relay_on


@pytest.mark.parametrize("frame", [
    {"type": "start"}, {"type": "start", "session_id": "5"}, {"type": "start", "session_id": True},
    {"type": "bogus"}, {"type": "stop", "session_id": [1]},
])
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
    rig.charger.connected()
    sent = rig.sent()
    assert types(sent) == ["status"] + ["metrics"] * 6
    assert sent[0]["state"] == "charging" and sent[0]["session_id"] == 5
    ts = [m["ts"] for m in sent[1:]]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)  # the present comes last, in order
    assert ("replayed", {"n": 5}) in rig.notes


def test_no_second_reading_with_the_same_whole_second_ts():
    rig = Rig()
    rig.charging()
    rig.charger.receive({"type": "sync_request", "from": "server"})
    assert types(rig.sent()) == ["status"]  # the start reading of this second already went


def test_stop_while_offline_replays_readings_then_stop_then_the_present_status():
    rig = Rig()
    rig.charging()
    rig.advance(3)
    before = rig.sent()[-1]["wh"]
    rig.charger.disconnected()
    rig.advance(9)
    rig.charger.press_stop()
    rig.advance(9)  # idle: nothing more to queue
    rig.charger.connected()
    sent = rig.sent()
    assert types(sent) == ["status"] + ["metrics"] * 4 + ["stop", "status"]
    # the first status describes the session as the server last knew it, so it resumes it
    assert sent[0]["state"] == "charging" and sent[0]["session_id"] == 5
    assert sent[0]["wh"] >= before
    assert sent[5]["session_id"] == 5 and sent[5]["wh"] == rig.model.register_wh
    assert sent[6] == {"type": "status", "state": "idle", "session_id": None,
                      "wh": rig.model.register_wh}


def test_a_tap_cannot_be_reported_offline():
    rig = Rig()
    rig.charger.tap(CARD)
    assert rig.charger.state == IDLE and len(rig.charger.outbox) == 0


def test_a_tap_whose_scan_was_lost_with_the_link_returns_to_idle():
    rig = Rig()
    rig.online()
    rig.charger.tap(CARD)
    rig.charger.disconnected()  # the nfc_scan never left
    assert rig.charger.state == IDLE and len(rig.charger.outbox) == 0


def test_reboot_forgets_the_session_and_the_queue_but_keeps_the_register():
    rig = Rig()
    rig.charging()
    rig.advance(30)
    rig.charger.disconnected()
    rig.advance(6)
    register = rig.model.register_wh
    rig.charger.reboot()
    assert not rig.model.relay_on and rig.charger.session_id is None
    assert rig.online() == [{"type": "status", "state": "idle", "session_id": None,
                             "wh": register}]


def test_ten_minutes_offline_ends_the_session_locally():
    rig = Rig(interval=30.0)
    rig.charging()
    rig.charger.disconnected()
    rig.advance(601, step=1)
    assert rig.charger.state == IDLE and not rig.model.relay_on
    assert types(rig.charger.outbox)[-1] == "stop"


def test_outbox_keeps_the_newest_readings_and_never_drops_session_events():
    outbox = Outbox(max_readings=3)
    outbox.put({"type": "metrics", "ts": 1})
    outbox.put({"type": "emergency", "session_id": None})
    for ts in range(2, 7):
        outbox.put({"type": "metrics", "ts": ts})
    outbox.put({"type": "stop", "session_id": 5})
    assert [(m["type"], m.get("ts")) for m in outbox.drain()] == [
        ("emergency", None), ("metrics", 4), ("metrics", 5), ("metrics", 6), ("stop", None)]
    assert outbox.dropped_readings == 3


def test_a_long_outage_keeps_200_readings_the_newest_ones():
    rig = Rig(interval=1.0)
    rig.charging()
    rig.charger.disconnected()
    rig.advance(250)
    assert rig.charger.outbox.readings == 200
    rig.charger.press_stop()
    rig.charger.connected()
    sent = rig.sent()
    readings = [m for m in sent if m["type"] == "metrics"]
    assert len(readings) == 200 and types(sent)[-2:] == ["stop", "status"]
    # 250 periodic readings (one per second) and the final one were queued: the oldest 51
    # were dropped, so the replay starts with the 52nd
    assert readings[0]["ts"] == 1_700_000_052 and rig.charger.outbox.dropped_readings == 51


def test_outbox_restores_a_failed_send_at_the_front():
    outbox = Outbox()
    for ts in (1, 2):
        outbox.put({"type": "metrics", "ts": ts})
    first = outbox.pop()
    outbox.restore(first)
    assert [m["ts"] for m in outbox.drain()] == [1, 2]


def test_each_session_charges_a_new_car_from_the_plug_in_charge():
    rig = Rig()
    rig.charging(session_id=5)
    rig.advance(3600, step=5)
    assert rig.model.soc > 0.3
    rig.charger.press_stop()
    rig.charger.tap(CARD)
    rig.charger.receive({"type": "start", "session_id": 6, "user_name": "Juan Pérez"})
    assert rig.model.soc == pytest.approx(0.2) and rig.model.read().a == 32.0

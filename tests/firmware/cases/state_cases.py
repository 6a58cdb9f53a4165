"""Cases for the pure charger state machine; run under CPython and MicroPython."""

from charger import state as S
from charger.state import ChargerState


def _charging(sid=7, now=0):
    m = ChargerState()
    m.boot(True, False, now)
    m.link(True, now)
    m.card("04A1B2C3", now)
    m.start(sid, now + 100)
    return m


def case_tap_reports_the_card_and_waits_for_start():
    m = ChargerState()
    m.boot(True, False, 0)
    acts = m.card("04A1B2C3", 10)
    assert acts & S.A_SEND_SCAN and m.uid == "04A1B2C3"
    assert m.state == S.WAIT_START and m.state_name == "idle"


def case_same_card_within_3_s_is_ignored_then_accepted_again():
    m = ChargerState()
    m.boot(True, False, 0)
    m.card("AA", 0)
    m.tick(10000)  # start timeout: back to idle
    assert m.state == S.IDLE
    assert m.card("AA", 10500) & S.A_SEND_SCAN  # 3 s passed: the same card counts again
    m2 = ChargerState()
    m2.boot(True, False, 0)
    m2.card("AA", 0)
    m2.error(100)
    assert m2.card("AA", 2000) == 0
    assert m2.card("AA", 4000) == 0  # repeated taps keep extending the quiet window
    assert m2.card("AA", 7100) & S.A_SEND_SCAN
    assert m2.card("BB", 7200) == 0  # a second card while waiting is ignored


def case_start_turns_the_relay_on():
    m = _charging()
    assert m.state == S.CHARGING and m.session_id == 7 and m.state_name == "charging"
    assert m.led == S.LED_CHARGING


def case_no_start_within_10_s_goes_back_to_idle_with_an_error_led():
    m = ChargerState()
    m.boot(True, False, 0)
    m.card("AA", 0)
    assert m.tick(9999) == 0
    acts = m.tick(10000)
    assert m.state == S.IDLE and acts & S.A_LED and m.led == S.LED_ERROR


def case_offline_tap_returns_to_idle():
    m = ChargerState()
    m.boot(True, False, 0)
    m.card("AA", 0)
    m.scan_not_sent(1)
    assert m.state == S.IDLE and m.led == S.LED_ERROR


def case_late_start_is_refused_with_a_stop():
    m = ChargerState()
    m.boot(True, False, 0)
    acts = m.start(55, 0)
    assert not acts & S.A_RELAY_ON and acts & S.A_QUEUE_STOP and m.event_sid == 55


def case_metrics_every_interval_from_1_s_readings():
    m = _charging(now=0)
    queued = 0
    for i in range(1, 13):
        if m.meter_reading(230.0, 10.0, 2300.0, 100 + i, 100 + i * 1000) & S.A_QUEUE_READING:
            queued += 1
    assert queued == 4  # 12 s of readings, one metrics every 3 s


def case_stop_button_turns_relay_off_and_queues_a_final_stop():
    m = _charging()
    m.meter_reading(230.0, 10.0, 2300.0, 500, 1000)
    acts = m.stop_button(True, 2000)
    assert acts & S.A_RELAY_OFF and acts & S.A_FINAL_READING and acts & S.A_QUEUE_STOP
    assert m.event_sid == 7 and m.state == S.IDLE and m.session_id is None


def case_remote_stop_goes_idle_without_a_message():
    m = _charging()
    acts = m.remote_stop(7, 500)
    assert acts & S.A_RELAY_OFF and not acts & S.A_QUEUE_STOP and m.state == S.IDLE


def case_remote_stop_for_another_session_is_ignored():
    m = _charging()
    assert m.remote_stop(99, 500) == 0 and m.state == S.CHARGING


def case_emergency_faults_and_reports_the_session():
    m = _charging()
    acts = m.emergency(True, 500)
    assert acts & S.A_RELAY_OFF and acts & S.A_QUEUE_EMERGENCY
    assert m.state == S.FAULT and m.event_sid == 7 and m.state_name == "fault"
    assert m.card("CC", 9000) == 0  # cards are ignored in fault
    assert m.start(8, 9000) & S.A_QUEUE_STOP  # and so is a start


def case_reset_gesture_needs_emergency_released_and_stop_held_5_s():
    m = _charging()
    m.emergency(True, 0)
    m.stop_button(True, 100)
    assert m.tick(6000) == 0  # emergency still open
    m.emergency(False, 7000)
    assert m.tick(11999) == 0
    acts = m.tick(12000)
    assert acts & S.A_SEND_STATUS and m.state == S.IDLE


def case_releasing_stop_early_does_not_reset():
    m = _charging()
    m.emergency(True, 0)
    m.emergency(False, 100)
    m.stop_button(True, 200)
    m.stop_button(False, 3000)
    assert m.tick(9000) == 0 and m.state == S.FAULT


def case_silent_meter_for_5_s_stops_the_session():
    m = _charging(now=0)
    m.meter_reading(230.0, 10.0, 2300.0, 10, 1000)
    assert m.tick(5999) == 0
    acts = m.tick(6000)
    assert acts & S.A_RELAY_OFF and acts & S.A_QUEUE_STOP and not acts & S.A_FINAL_READING
    assert m.stop_reason == S.STOP_METER and m.led == S.LED_METER_FAULT


def case_offline_limit_stops_charging_locally():
    m = ChargerState(offline_limit_ms=60000)
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    m.start(3, 10)
    m.link(False, 1000)
    for t in range(2000, 61000, 1000):
        m.meter_reading(230.0, 1.0, 230.0, 1, t)
        assert not m.tick(t) & S.A_RELAY_OFF
    m.meter_reading(230.0, 1.0, 230.0, 1, 61000)
    acts = m.tick(61000)
    assert acts & S.A_RELAY_OFF and acts & S.A_QUEUE_STOP and m.stop_reason == S.STOP_OFFLINE


def case_link_back_before_limit_keeps_charging():
    m = ChargerState(offline_limit_ms=60000)
    m.boot(True, False, 0)
    m.card("AA", 0)
    m.start(3, 10)
    m.link(False, 1000)
    m.link(True, 30000)
    m.meter_reading(230.0, 1.0, 230.0, 1, 90000)
    assert m.tick(90000) == 0 and m.state == S.CHARGING


def case_missing_reader_shows_a_fault_without_crashing():
    m = ChargerState()
    acts = m.boot(False, False, 0)
    assert acts & S.A_LOG and m.led == S.LED_READER_FAULT and "reader" in m.note


def case_emergency_open_at_boot_is_a_fault():
    m = ChargerState()
    m.boot(True, True, 0)
    assert m.state == S.FAULT


def case_start_reports_the_meter_before_the_relay_closed_as_baseline():
    m = ChargerState()
    m.boot(True, False, 0)
    m.meter_reading(230.0, 0.0, 0.0, 5000, 500)
    m.card("AA", 600)
    acts = m.start(9, 700)
    assert acts & S.A_RELAY_ON and acts & S.A_QUEUE_READING
    assert m.session_id == 9 and m.wh == 5000 and m.w == 0.0

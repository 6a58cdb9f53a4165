"""Cases for the pure charger state machine; run under CPython and MicroPython."""

from charger import state as S
from charger.state import ChargerState

# The state machine's numbers (private `const()`s in charger/state.py, listed in its docstring)
IDLE, WAIT_START, CHARGING, FAULT = 0, 1, 2, 3
RELAY_OFF, RELAY_ON, FINAL_READING, LED, SEND_SCAN = 1, 2, 4, 8, 16
QUEUE_READING, QUEUE_STOP, QUEUE_EMERGENCY, SEND_STATUS, LOG = 32, 64, 128, 256, 512
FLASH_ERROR, STOP_REASON, OFFLINE_TAP = 1024, 2048, 4096
LED_IDLE, LED_WAIT, LED_CHARGING, LED_ERROR, LED_FAULT = 0, 1, 2, 3, 4
LED_OFFLINE, LED_READER_FAULT, LED_METER_FAULT = 5, 6, 7


def case_the_numbers_here_are_the_state_modules():
    # Under CPython the private consts are module globals (MicroPython compiles them away).
    for name, value in (
        ("_A_RELAY_OFF", RELAY_OFF),
        ("_A_RELAY_ON", RELAY_ON),
        ("_A_FINAL_READING", FINAL_READING),
        ("_A_LED", LED),
        ("_A_SEND_SCAN", SEND_SCAN),
        ("_A_QUEUE_READING", QUEUE_READING),
        ("_A_QUEUE_STOP", QUEUE_STOP),
        ("_A_QUEUE_EMERGENCY", QUEUE_EMERGENCY),
        ("_A_SEND_STATUS", SEND_STATUS),
        ("_A_LOG", LOG),
        ("_A_FLASH_ERROR", FLASH_ERROR),
        ("_A_STOP_REASON", STOP_REASON),
        ("_A_OFFLINE_TAP", OFFLINE_TAP),
        ("_IDLE", IDLE),
        ("_WAIT_START", WAIT_START),
        ("_CHARGING", CHARGING),
        ("_FAULT", FAULT),
        ("_LED_IDLE", LED_IDLE),
        ("_LED_WAIT", LED_WAIT),
        ("_LED_CHARGING", LED_CHARGING),
        ("_LED_ERROR", LED_ERROR),
        ("_LED_FAULT", LED_FAULT),
        ("_LED_OFFLINE", LED_OFFLINE),
        ("_LED_READER_FAULT", LED_READER_FAULT),
        ("_LED_METER_FAULT", LED_METER_FAULT),
    ):
        assert getattr(S, name, value) == value, name


def _charging(sid=7, now=0):
    m = ChargerState()
    m.boot(True, False, now)
    m.link(True, now)
    m.card("04A1B2C3", now)
    m.server("start", sid, now + 100)
    return m


def case_tap_reports_the_card_and_waits_for_start():
    m = ChargerState()
    m.boot(True, False, 0)
    m.link(True, 0)
    acts = m.card("04A1B2C3", 10)
    assert acts & SEND_SCAN and m.uid == "04A1B2C3"
    assert m.state == WAIT_START and m.state_name == "idle"


def case_same_card_within_3_s_is_ignored_then_accepted_again():
    m = ChargerState()
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    m.tick(10000)  # start timeout: back to idle
    assert m.state == IDLE
    assert m.card("AA", 10500) & SEND_SCAN  # 3 s passed: the same card counts again
    m2 = ChargerState()
    m2.boot(True, False, 0)
    m2.link(True, 0)
    m2.card("AA", 0)
    m2.server("error", None, 100)
    assert m2.card("AA", 2000) == 0
    assert m2.card("AA", 4000) == 0  # repeated taps keep extending the quiet window
    assert m2.card("AA", 7100) & SEND_SCAN
    assert m2.card("BB", 7200) == 0  # a second card while waiting is ignored


def case_start_turns_the_relay_on():
    m = _charging()
    assert m.state == CHARGING and m.session_id == 7 and m.state_name == "charging"
    assert m.led == LED_CHARGING


def case_no_start_within_10_s_goes_back_to_idle_with_an_error_led():
    m = ChargerState()
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    assert m.tick(9999) == 0
    acts = m.tick(10000)
    assert m.state == IDLE and acts & FLASH_ERROR
    assert acts & LED and m.led == LED_IDLE  # the error flashes once, then idle (not wait)


def case_an_offline_tap_asks_the_app_for_its_list_and_an_unlisted_card_is_refused():
    # Offline (issue 13) a tap is not sent: the app checks its signed list at once (4096).
    # Before, the state machine refused every offline tap by itself.
    m = ChargerState()
    m.boot(True, False, 0)  # the link is not up yet
    acts = m.card("AA", 0)
    assert not acts & SEND_SCAN and acts & OFFLINE_TAP and m.state == WAIT_START
    acts = m.server("error", None, 1)  # not listed: the app answers as the server would
    assert acts & FLASH_ERROR and m.state == IDLE and m.led == LED_OFFLINE


def case_an_offline_tap_listed_starts_under_the_local_id():
    m = ChargerState()
    m.boot(True, False, 0)
    m.tick(0, 1000)  # the meter's register before the relay closes
    m.card("AA", 10)
    acts = m.server("start", 0x80000001, 20)
    assert acts & RELAY_ON and acts & QUEUE_READING and m.session_id == 0x80000001
    # the offline limit (600 s) bounds it, counted from the start
    m.tick(600000, 1000)
    assert m.tick(600001) == 0 and m.state == CHARGING
    m.tick(620000, 1000)
    assert m.tick(620001) & STOP_REASON and m.note == "offline_limit"


def case_end_stops_an_accepted_offline_session_whose_card_is_disabled():
    m = _charging(sid=9)
    acts = m.server("end", 8, 500)  # another session: nothing
    assert acts == 0 and m.state == CHARGING
    acts = m.server("end", 9, 600)
    assert acts & RELAY_OFF and acts & QUEUE_STOP and not acts & STOP_REASON
    assert m.event_sid == 9 and m.state == IDLE and m.note == "card_disabled"


def case_a_tap_while_charging_offline_is_not_sent_and_changes_nothing():
    m = _charging()
    m.link(False, 4000)
    assert m.card("BB", 5000) == 0
    assert m.state == CHARGING and m.led == LED_CHARGING


def case_server_error_while_charging_shows_the_error_led_and_keeps_charging():
    m = _charging()
    assert m.server("error", None, 500) == FLASH_ERROR
    assert m.led == LED_CHARGING and m.state == CHARGING


def case_late_start_is_refused_with_a_stop():
    m = ChargerState()
    m.boot(True, False, 0)
    acts = m.server("start", 55, 0)
    assert not acts & RELAY_ON and acts & QUEUE_STOP and m.event_sid == 55


def case_metrics_every_interval_from_1_s_readings():
    m = _charging(now=0)
    queued = 0
    for i in range(1, 13):
        if m.tick(100 + i * 1000, 100 + i) & QUEUE_READING:
            queued += 1
    assert queued == 4  # 12 s of readings, one metrics every 3 s


def case_stop_button_turns_relay_off_and_queues_a_final_stop():
    m = _charging()
    m.tick(1000, 500)
    acts = m.button("stop", True, 2000)
    assert acts & RELAY_OFF and acts & FINAL_READING and acts & QUEUE_STOP
    assert m.event_sid == 7 and m.state == IDLE and m.session_id is None


def case_remote_stop_goes_idle_without_a_message():
    m = _charging()
    acts = m.server("stop", 7, 500)
    assert acts & RELAY_OFF and not acts & QUEUE_STOP and m.state == IDLE


def case_remote_stop_for_another_session_is_ignored():
    m = _charging()
    assert m.server("stop", 99, 500) == 0 and m.state == CHARGING


def case_emergency_faults_and_reports_the_session():
    m = _charging()
    acts = m.button("emergency", True, 500)
    assert acts & RELAY_OFF and acts & QUEUE_EMERGENCY
    assert m.state == FAULT and m.event_sid == 7 and m.state_name == "fault"
    assert m.session_id is None and m.led == LED_FAULT
    assert m.card("CC", 9000) == 0  # cards are ignored in fault
    assert m.server("start", 8, 9000) & QUEUE_STOP  # and so is a start


def case_reset_gesture_needs_emergency_released_and_stop_held_5_s():
    m = _charging()
    m.button("emergency", True, 0)
    m.button("stop", True, 100)
    assert m.tick(6000) == 0  # emergency still open
    m.button("emergency", False, 7000)
    assert m.tick(11999) == 0
    acts = m.tick(12000)
    assert acts & SEND_STATUS and m.state == IDLE


def case_releasing_stop_early_does_not_reset():
    m = _charging()
    m.button("emergency", True, 0)
    m.button("emergency", False, 100)
    m.button("stop", True, 200)
    m.button("stop", False, 3000)
    assert m.tick(9000) == 0 and m.state == FAULT


def case_silent_meter_for_5_s_stops_the_session():
    m = _charging(now=0)
    m.tick(1000, 10)
    assert m.tick(5999) == 0
    acts = m.tick(6000)
    assert acts & RELAY_OFF and acts & QUEUE_STOP and not acts & FINAL_READING
    assert acts & STOP_REASON  # the stop says why: `note`
    assert m.note == "meter_failure" and m.led == LED_METER_FAULT


def case_offline_limit_stops_charging_locally():
    m = ChargerState((3000, 10000, 3000, 5000, 60000, 5000))
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    m.server("start", 3, 10)
    m.link(False, 1000)
    for t in range(2000, 61000, 1000):
        m.tick(t, 1)
        assert not m.tick(t) & RELAY_OFF
    acts = m.tick(61000, 1)  # no reading due: the limit is checked in the same tick
    assert acts & RELAY_OFF and acts & QUEUE_STOP and m.note == "offline_limit"
    assert acts & STOP_REASON and acts & FINAL_READING


def case_the_stop_button_s_stop_has_no_reason():
    m = _charging()
    acts = m.button("stop", True, 1000)
    assert acts & QUEUE_STOP and acts & FINAL_READING and not acts & STOP_REASON


def case_link_back_before_limit_keeps_charging():
    m = ChargerState((3000, 10000, 3000, 5000, 60000, 5000))
    m.boot(True, False, 0)
    m.link(True, 0)
    m.card("AA", 0)
    m.server("start", 3, 10)
    m.link(False, 1000)
    m.link(True, 30000)
    m.tick(90000, 1)
    assert m.tick(90000) == 0 and m.state == CHARGING


def case_missing_reader_shows_a_fault_without_crashing():
    m = ChargerState()
    acts = m.boot(False, False, 0)
    assert acts & LOG and m.led == LED_READER_FAULT and "reader" in m.note


def case_idle_led_shows_whether_the_server_is_reachable():
    m = ChargerState()
    m.boot(True, False, 0)
    assert m.led == LED_OFFLINE
    assert m.link(True, 10) & LED and m.led == LED_IDLE
    m.link(False, 20)
    assert m.led == LED_OFFLINE


def case_emergency_open_at_boot_is_a_fault():
    m = ChargerState()
    m.boot(True, True, 0)
    assert m.state == FAULT


def case_start_reports_the_meter_before_the_relay_closed_as_baseline():
    m = ChargerState()
    m.boot(True, False, 0)
    m.link(True, 0)
    m.tick(500, 5000)
    m.card("AA", 600)
    acts = m.server("start", 9, 700)
    assert acts & RELAY_ON and acts & QUEUE_READING
    assert m.session_id == 9 and m.wh == 5000

"""Cases for the charger's protocol messages; run under CPython and MicroPython."""

import json

from charger import messages


def case_nfc_scan_has_the_seed_fields():
    assert json.loads(messages.nfc_scan("04A1B2C3D4E5F6")) == {
        "type": "nfc_scan",
        "nfc_uid": "04A1B2C3D4E5F6",
    }


def case_metrics_has_seed_fields_plus_wh():
    msg = json.loads(messages.metrics(123, 220.5, 16.2, 3572.1, 1234, 1699276425))
    assert msg == {
        "type": "metrics",
        "session_id": 123,
        "v": 220.5,
        "a": 16.2,
        "w": 3572.1,
        "wh": 1234,
        "ts": 1699276425,
    }


def case_metrics_omits_ts_while_the_clock_is_unset():
    assert "ts" not in json.loads(messages.metrics(1, 230.0, 1.0, 230.0, 5, 0))
    assert "ts" not in json.loads(messages.metrics(1, 230.0, 1.0, 230.0, 5, None))


def case_stop_and_emergency_carry_the_final_energy():
    assert json.loads(messages.stop(123, 900, 1699276425)) == {
        "type": "stop",
        "session_id": 123,
        "wh": 900,
        "ts": 1699276425,
    }
    assert json.loads(messages.emergency(123, 900, 0)) == {
        "type": "emergency",
        "session_id": 123,
        "wh": 900,
    }
    assert json.loads(messages.emergency(None, None, 0)) == {
        "type": "emergency",
        "session_id": None,
    }


def case_a_stop_for_a_fault_says_why_and_the_stop_button_s_does_not():
    for reason in ("meter_failure", "offline_limit"):
        assert json.loads(messages.stop(123, 900, 1699276425, reason=reason)) == {
            "type": "stop",
            "session_id": 123,
            "reason": reason,
            "wh": 900,
            "ts": 1699276425,
        }
    assert json.loads(messages.stop(5, None, 0, reason="meter_failure")) == {
        "type": "stop",
        "session_id": 5,
        "reason": "meter_failure",
    }
    assert "reason" not in json.loads(messages.stop(123, 900, 1699276425))


def case_status_reports_state_session_and_energy():
    assert json.loads(messages.status("charging", 9, 1500)) == {
        "type": "status",
        "state": "charging",
        "session_id": 9,
        "wh": 1500,
    }
    assert json.loads(messages.status("idle", None, None)) == {
        "type": "status",
        "state": "idle",
        "session_id": None,
        "wh": None,
    }


def case_status_rejects_an_unknown_state():
    try:
        messages.status("busy", None, 0)
    except ValueError:
        return
    raise AssertionError("no ValueError")


def case_parse_accepts_only_objects_with_a_string_type():
    assert messages.parse('{"type":"start","session_id":1,"user_name":"Juan"}')["type"] == "start"
    for bad in ("", "nonsense", "[1,2]", '"start"', '{"type":3}', "{}", "null", '{"x":1}'):
        assert messages.parse(bad) is None, bad

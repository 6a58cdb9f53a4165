"""Frame validation without sockets: anything a network can send is either a message or a
ProtocolError with a code, never another exception."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import protocol as p

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["nfc_scan", "metrics", "stop", "emergency", "status", "x"])},
    optional={
        k: json_values
        for k in ("session_id", "v", "a", "w", "ts", "wh", "nfc_uid", "state", "reason")
    },
)


@settings(deadline=None, max_examples=300)
@given(st.one_of(message_like, json_values))
def test_any_json_is_a_message_or_an_invalid_message_error(value):
    frame = json.dumps(value)
    for parse in (p.parse_publisher_message, p.parse_client_message):
        try:
            parse(frame)
        except p.ProtocolError as problem:
            assert problem.code == p.INVALID_MESSAGE and problem.message


@settings(deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes_and_text_never_escape_as_another_exception(frame):
    try:
        p.parse_publisher_message(frame)
    except p.ProtocolError:
        pass


def test_seed_examples_parse_as_written():
    assert p.parse_publisher_message(
        '{"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}'
    ) == p.NfcScan("VIRTUAL-1-A4F2E8")
    metrics = p.parse_publisher_message(
        '{"type":"metrics","session_id":123,"v":220.5,"a":16.2,"w":3572.1,"ts":1699276425}'
    )
    assert metrics == p.Metrics(123, 220.5, 16.2, 3572.1, 1699276425.0)
    assert p.parse_publisher_message('{"type":"stop","session_id":123}') == p.Stop(123)
    assert p.parse_publisher_message('{"type":"emergency","session_id":123}') == p.Emergency(123)
    assert p.parse_client_message('{"type":"stop","session_id":123}') == p.RemoteStop(123)


@pytest.mark.parametrize(
    "reason", ["meter_failure", "offline_limit", "power_loss", "charger_reset"]
)
def test_a_charger_stop_may_say_it_stopped_for_a_fault_or_was_interrupted_by_a_reboot(reason):
    frame = f'{{"type":"stop","session_id":123,"reason":"{reason}","ts":1699276430}}'
    assert p.parse_publisher_message(frame) == p.Stop(123, ts=1699276430.0, reason=reason)


@pytest.mark.parametrize("reason", ["tired", "", "METER_FAILURE", 3, True, ["meter_failure"], {}])
def test_an_unknown_stop_reason_is_an_invalid_message_naming_the_field(reason):
    frame = json.dumps({"type": "stop", "session_id": 123, "reason": reason})
    with pytest.raises(p.ProtocolError) as refused:
        p.parse_publisher_message(frame)
    assert refused.value.code == p.INVALID_MESSAGE and "stop.reason" in refused.value.message


@pytest.mark.parametrize(
    "builder, expected",
    [
        (p.connected("1"), {"type": "connected", "role": "publisher", "estacionId": "1"}),
        (p.subscribed("1"), {"type": "subscribed", "estacionId": "1"}),
        (p.sync_request(), {"type": "sync_request", "from": "server"}),
        (
            p.start(123, "Juan Pérez"),
            {"type": "start", "session_id": 123, "user_name": "Juan Pérez"},
        ),
        (
            p.metrics(123, 1, 220.5, 16.2, 3572.1, 2.45, 17.15, 850.7),
            {
                "type": "metrics",
                "session_id": 123,
                "charger_id": 1,
                "v": 220.5,
                "a": 16.2,
                "w": 3572.1,
                "kwh": 2.45,
                "cost": 17.15,
                "time": 850,
            },
        ),
        (
            p.emergency(1, 123, 1762430700.0),
            {
                "type": "emergency",
                "charger_id": 1,
                "session_id": 123,
                "timestamp": "2025-11-06T12:05:00.000Z",
            },
        ),
        (
            p.alert(1, 123, "meter_failure", "Falla del medidor", 1762430700.0),
            {
                "type": "alert",
                "charger_id": 1,
                "session_id": 123,
                "kind": "meter_failure",
                "message": "Falla del medidor",
                "timestamp": "2025-11-06T12:05:00.000Z",
            },
        ),
    ],
)
def test_outbound_messages_have_the_seed_shapes(builder, expected):
    assert json.loads(p.encode(builder)) == expected

"""The one id rule (server/ids.py): a frame's session_id, an admin message's id, the storage's
own check and an id spelled in a URL or estacionId take exactly the same numbers."""

import pytest

from server import protocol as p
from server.dashboard_messages import Refused, field_id
from server.ids import MAX_ID, id_from_text
from server.storage.values import check_id

VALUES = [1, 2, MAX_ID, 0, -1, MAX_ID + 1, True, False, 1.0, "1", None, [1]]


def frame_takes(value) -> bool:
    frame = {"type": "metrics", "session_id": value, "v": 230, "a": 10, "w": 2300}
    try:
        p.parse_publisher_message(frame)
    except p.ProtocolError:
        return False
    return True


def admin_takes(value) -> bool:
    try:
        field_id({"type": "admin_set_tariff", "station_id": value}, "station_id")
    except Refused:
        return False
    return True


def storage_takes(value) -> bool:
    try:
        check_id(value, "station id")
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_check_takes_the_same_ids(value):
    expected = type(value) is int and 1 <= value <= MAX_ID
    assert (frame_takes(value), admin_takes(value), storage_takes(value)) == (expected,) * 3


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1", 1),
        ("007", 7),
        (str(MAX_ID), MAX_ID),
        (str(MAX_ID + 1), None),
        ("0", None),
        ("", None),
        (None, None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("²", None),  # a digit to str.isdigit(), int() refuses it
        ("١", None),  # Arabic-Indic one: decimal to str.isdecimal() and int() takes it
        ("9" * 5000, None),  # longer than int() converts without raising
    ],
)
def test_an_id_in_text_is_ascii_digits_up_to_max_id(text, expected):
    assert id_from_text(text) == expected

import pytest

from server.uids import InvalidUid, normalize_uid


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("VIRTUAL-1-A4F2E8", "VIRTUAL-1-A4F2E8"),
        ("04:a3:2b:1c", "04A32B1C"),
        ("04 a3 2b 1c 5d 6e 80", "04A32B1C5D6E80"),
        ("virtual-1-a4f2e8", "VIRTUAL-1-A4F2E8"),
    ],
)
def test_uids_are_normalized_as_the_protocol_says(raw, expected):
    assert normalize_uid(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", None, 123, "x" * 65, "'; DROP TABLE cards;--", "ü1"])
def test_malformed_uids_are_rejected(raw):
    with pytest.raises(InvalidUid):
        normalize_uid(raw)

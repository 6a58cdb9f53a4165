"""Card UID normalization: the one rule every part of the server applies to an NFC UID.

Upper case, ':' and white space removed; dashes are kept (`VIRTUAL-1-A4F2E8`).
"""

import re

_REMOVED = re.compile(r"[:\s]+")
_ALLOWED = re.compile(r"^[A-Z0-9\-_]{1,64}$")


class InvalidUid(ValueError):
    """Raised when a UID is empty, too long or has characters a card UID never has."""


def normalize_uid(raw: object) -> str:
    """Return the canonical form of a card UID or raise InvalidUid."""
    if not isinstance(raw, str):
        raise InvalidUid("nfc_uid must be a string")
    uid = _REMOVED.sub("", raw).upper()
    if not _ALLOWED.match(uid):
        raise InvalidUid("nfc_uid must be 1-64 characters of A-Z, 0-9, '-' or '_'")
    return uid

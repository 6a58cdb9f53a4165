"""The one rule for what a record id is: a whole number from 1 to MAX_ID.

Used by every place an id arrives from outside (a JSON frame, a dashboard message, a query
string or a URL path, an `estacionId`) and by the storage's own value checks, so a number one
of them takes is never refused by another. MAX_ID is 2**53: the largest integer a browser's
JSON numbers carry exactly. Pure; no imports from the rest of the server.
"""

from typing import TypeGuard

MAX_ID = 2**53
_MAX_DIGITS = len(str(MAX_ID))


def is_positive_id(value: object) -> TypeGuard[int]:
    """A JSON/Python value that is an id (True and 1.0 are not)."""
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_ID


def id_from_text(text: str | None) -> int | None:
    """The id a query value or path segment spells in ASCII digits, None if it spells none.
    isascii() too: "٣" is decimal to str.isdecimal() and int() takes it."""
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdecimal()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None

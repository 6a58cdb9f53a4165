"""Validation of the values Storage is given, before any SQL runs. Pure; raises ValueError
with a message fit to show a person (the admin CLI prints it as is)."""

import json
import logging
import math

from server.energy import MAX_POWER_CAP_W
from server.ids import MAX_ID, is_positive_id

MAX_NAME_LENGTH = 100
# price per kWh at most: far above any real tariff in any currency that has decimals, low
# enough that a typo (1e308, an extra 0s) is caught before it bills anyone
MAX_TARIFF = 10_000.0


def check_id(value: object, what: str) -> int:
    if not is_positive_id(value):
        raise ValueError(f"{what} must be a positive whole number up to {MAX_ID}, not {value!r}")
    return value


def check_count(value: object, what: str, maximum: int | None = None) -> int:
    """A whole number from 0 (to maximum): a page size or offset."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or (maximum is not None and value > maximum)
    ):
        upto = f" to {maximum}" if maximum is not None else " or more"
        raise ValueError(f"{what} must be a whole number from 0{upto}, not {value!r}")
    return value


def check_number(value: object, what: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum:g}, not {value!r}")
    return float(value)


def check_optional_number(value: object, what: str) -> float | None:
    return None if value is None else check_number(value, what)


def check_tariff(value: object) -> float:
    tariff = check_number(value, "tariff", minimum=0)
    if tariff > MAX_TARIFF:
        raise ValueError(f"tariff must be a price per kWh from 0 to {MAX_TARIFF:g}, not {value!r}")
    return tariff


def check_max_power(value: object) -> float:
    """A station's max power in W: 0 < W <= MAX_POWER_CAP_W (the plausibility limit of its
    energy readings, server/energy.py)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0 < value <= MAX_POWER_CAP_W)
    ):
        raise ValueError(
            f"max power must be a number of watts above 0 and at most "
            f"{MAX_POWER_CAP_W:.0f}, not {value!r}"
        )
    return float(value)


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must not be empty")
    name = value.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} must be at most {MAX_NAME_LENGTH} characters")
    return name


# OCPP 1.6J: a charge point identity is the URL's last path segment and the HTTP Basic user
# name (no ':'); we keep it to printable ASCII without '/', ':' or spaces, at most 48 characters
# (the length of OCPP's CiString48, the longest id field).
MAX_CHARGE_POINT_ID = 48
_CHARGE_POINT_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
)


def check_charge_point_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("charge point id must not be empty")
    if len(value) > MAX_CHARGE_POINT_ID:
        raise ValueError(f"charge point id must be at most {MAX_CHARGE_POINT_ID} characters")
    if not set(value) <= _CHARGE_POINT_ID_CHARS:
        raise ValueError("charge point id may only hold letters, digits and - _ . ~")
    return value


def encode_state(energy_state: object) -> str:
    """The energy state as JSON text; refuses what would not load back the same."""
    if not isinstance(energy_state, dict):
        raise ValueError("energy_state must be a dict")
    try:
        return json.dumps(energy_state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"energy_state is not plain JSON: {exc}") from exc


def decode_state(text: str, session_id: object) -> dict:
    """A stored energy_state back as a dict ({} if unreadable, logged: never a crash at start)."""
    try:
        state = json.loads(text)
    except ValueError:
        logging.getLogger("server.storage").warning(
            "storage: session %s has an unreadable energy_state; using {}", session_id
        )
        return {}
    return state if isinstance(state, dict) else {}

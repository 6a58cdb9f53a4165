"""The HTTP API's query strings and path ids: parsed and validated, or refused with ApiError.

Pure. Query strings are split with urllib.parse; unknown or repeated parameters are refused,
not ignored. The validation rules are a few lines per filter, so no schema library. A path id
follows the one id rule (server/ids.py).
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl

from server.answers import bad_request, not_found
from server.ids import id_from_text

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000_000
SESSION_FILTERS = frozenset({"station", "user", "from", "to", "limit", "offset"})
CREDENTIAL_PARAMETER = "token"
MAX_FILTER_ID = 2**31 - 1  # station and user filters: the ids the admin CLI hands out


def parse_query(raw_query: str, allowed: frozenset[str]) -> dict[str, str]:
    """Split a query string; unknown or repeated parameters are refused, not ignored.
    `token` is the credential, checked before any handler runs (server/app.py), so skipped."""
    try:
        pairs = parse_qsl(
            raw_query, keep_blank_values=True, strict_parsing=False, max_num_fields=32
        )
    except ValueError as exc:
        raise bad_request(f"malformed query string: {exc}") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name == CREDENTIAL_PARAMETER:
            continue
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise bad_request(f"unknown parameter {name!r} (known: {known})")
        if name in query:
            raise bad_request(f"parameter {name!r} given twice")
        query[name] = value
    return query


def parse_int(
    query: dict[str, str], name: str, default: int | None, low: int, high: int
) -> int | None:
    raw = query.get(name, "")
    if raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise bad_request(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def parse_path_id(raw: str, what: str) -> int:
    """The id in a URL path (/api/sessions/<id>); anything else names nothing: 404."""
    value = id_from_text(raw)
    if value is None:
        raise not_found(f"{what} {raw!r} not found (ids are positive integers)")
    return value


def parse_time(query: dict[str, str], name: str, end_of_day: bool) -> float | None:
    """Unix seconds, an ISO date (UTC day; `to` includes the whole day) or an ISO datetime."""
    raw = query.get(name, "").strip()
    if raw == "":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
            raise bad_request(f"{name} must be unix seconds, YYYY-MM-DD or an ISO-8601 time")
        return seconds
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise bad_request(f"{name}: {raw!r} is not a calendar date") from None
        if end_of_day:
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"{name} must be unix seconds, YYYY-MM-DD or an ISO-8601 time, got {raw!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class SessionFilters:
    """Validated history filters, in the Storage.list_sessions vocabulary."""

    station_id: int | None = None
    user_id: int | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def storage_kwargs(self) -> dict:
        return {
            "station_id": self.station_id,
            "user_id": self.user_id,
            "since": self.since,
            "until": self.until,
        }


def parse_session_filters(raw_query: str, extra: frozenset[str] = frozenset()) -> SessionFilters:
    """The history filters; `extra` names further parameters the caller reads itself."""
    query = parse_query(raw_query, SESSION_FILTERS | extra)
    filters = SessionFilters(
        station_id=parse_int(query, "station", None, 1, MAX_FILTER_ID),
        user_id=parse_int(query, "user", None, 1, MAX_FILTER_ID),
        since=parse_time(query, "from", end_of_day=False),
        until=parse_time(query, "to", end_of_day=True),
        limit=parse_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=parse_int(query, "offset", 0, 0, MAX_OFFSET),
    )
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise bad_request("from must not be later than to")
    return filters

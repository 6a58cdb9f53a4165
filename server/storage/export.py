"""Sessions as CSV text, for `python -m server.admin sessions export` and the dashboard's
`/api/sessions.csv`. `sessions_to_csv` is pure (records in, text out; the csv module does the
quoting); `export_sessions` walks Storage.sessions_before page by page (keyset paging) and
writes the same rows; `time_zone` turns a `tz` parameter into a zone or a one-line error.

The text starts with a UTF-8 byte order mark, so a spreadsheet reads "Pérez" as written.
Columns: session_id, station_id, user, card_uid, started_at, ended_at, duration_s (whole
seconds, a number), duration (the same as H:MM:SS, as the dashboard shows it: `0:05:07`,
`26:00:00`), kwh, cost, tariff, end_reason. Times are ISO 8601 with the UTC offset of the
chosen IANA time zone (`2026-12-03T10:15:00+01:00`; default UTC, `+00:00`). An open session
has empty ended_at, duration_s, duration and end_reason. A user name that a spreadsheet would
run as a formula (starts with = + - @) is prefixed with a quote (OWASP "CSV injection").
"""

import csv
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .contract import MAX_PAGE, Storage
from .records import SessionRecord

BOM = "\ufeff"
HEADER = (
    "session_id",
    "station_id",
    "user",
    "card_uid",
    "started_at",
    "ended_at",
    "duration_s",
    "duration",
    "kwh",
    "cost",
    "tariff",
    "end_reason",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone `name` (e.g. `America/Argentina/Buenos_Aires`); None or "" is UTC.
    Raises ValueError with one line for a name that is not a known zone."""
    if not name:
        return UTC
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ValueError(
            f"unknown time zone {name[:64]!r}: expected an IANA name such as Europe/Madrid or UTC"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as Europe/Madrid or UTC"
        ) from None


def iso_utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_in(ts: float | None, zone: tzinfo) -> str:
    """ISO 8601 to the second with the zone's UTC offset at that moment; "" for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(int(ts), zone).isoformat()


def hms(seconds: int) -> str:
    """`H:MM:SS`, hours unbounded: 307 -> `0:05:07`, 93600 -> `26:00:00`."""
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _safe_text(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def session_row(session: SessionRecord, zone: tzinfo = UTC) -> tuple:
    # whole seconds, cut as the API's `duration` is (what the dashboard shows)
    duration = (
        "" if session.ended_at is None else max(0, int(session.ended_at - session.started_at))
    )
    return (
        session.id,
        session.station_id,
        _safe_text(session.user_name),
        session.card_uid,
        iso_in(session.started_at, zone),
        iso_in(session.ended_at, zone),
        duration,
        "" if duration == "" else hms(duration),
        f"{session.kwh:.3f}",
        f"{session.cost:.2f}",
        str(session.tariff),
        session.end_reason or "",
    )


def sessions_to_csv(sessions: Iterable[SessionRecord], zone: tzinfo = UTC) -> str:
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(session_row(s, zone) for s in sessions)
    return out.getvalue()


async def export_sessions(
    storage: Storage,
    station_id: int | None = None,
    since: float | None = None,
    until: float | None = None,
    zone: tzinfo = UTC,
    user_id: int | None = None,
) -> tuple[str, int]:
    """Every matching session, newest first, as CSV text; also returns how many.

    Keyset paging (Storage.sessions_before): each page starts after the last row of the one
    before, by (started_at, id), so the walk stays linear on a long history and a session
    added during the export neither repeats a row nor pushes one out. Each page is written out
    as it comes (its records are not kept)."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    count, before = 0, None
    while True:
        page = await storage.sessions_before(
            station_id=station_id,
            user_id=user_id,
            since=since,
            until=until,
            before=before,
            limit=MAX_PAGE,
        )
        writer.writerows(session_row(s, zone) for s in page)
        count += len(page)
        if len(page) < MAX_PAGE:
            return out.getvalue(), count
        before = (page[-1].started_at, page[-1].id)

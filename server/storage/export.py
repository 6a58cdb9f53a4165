"""Sessions as CSV text, for `python -m server.admin sessions export` and the dashboard's
`/api/sessions.csv`. `sessions_to_csv` is pure (records in, text out; the csv module does the
quoting); `export_sessions` pages through Storage.list_sessions to feed it.

Times are ISO-8601 UTC with `Z`; an open session has empty ended_at, duration_s and
end_reason. A user name that a spreadsheet would run as a formula (starts with = + - @) is
prefixed with a quote (OWASP "CSV injection").
"""

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timezone

from .records import SessionRecord
from .store import MAX_PAGE, Storage

HEADER = ("session_id", "station_id", "user", "card_uid", "started_at", "ended_at",
          "duration_s", "kwh", "cost", "tariff", "end_reason")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def iso_utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe_text(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def session_row(session: SessionRecord) -> tuple:
    duration = "" if session.ended_at is None else round(session.ended_at - session.started_at)
    return (session.id, session.station_id, _safe_text(session.user_name), session.card_uid,
            iso_utc(session.started_at), iso_utc(session.ended_at), duration,
            f"{session.kwh:.3f}", f"{session.cost:.2f}", str(session.tariff),
            session.end_reason or "")


def sessions_to_csv(sessions: Iterable[SessionRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(session_row(s) for s in sessions)
    return out.getvalue()


async def export_sessions(storage: Storage, station_id: int | None = None,
                          since: float | None = None, until: float | None = None) -> tuple[str, int]:
    """Every matching session, newest first, as CSV text; also returns how many."""
    sessions: list[SessionRecord] = []
    while True:
        page, total = await storage.list_sessions(station_id=station_id, since=since, until=until,
                                                  limit=MAX_PAGE, offset=len(sessions))
        sessions.extend(page)
        if not page or len(sessions) >= total:
            return sessions_to_csv(sessions), len(sessions)

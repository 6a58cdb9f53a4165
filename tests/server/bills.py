"""A bill recomputed from the readings table alone, and the check every real server in the tests
makes of its closed sessions when it stops (tests/live_server.py `running_server`): each
session's billed kWh is its last reading row's `kwh` and the documented rules over its rows
(`ts`, `w`, `wh`, `flag`) give the same energy; the final register of a stop, emergency or idle
`status` is one of those rows (docs/protocol.md, "Energy and time"). Sessions a test wrote
through the storage itself (history fixtures: no energy account) are not checked."""

from __future__ import annotations

import math

from server import energy as e

PAGE = 200


def recompute_wh(rows, max_w) -> float:
    """A session's energy from its stored readings alone, by the documented rules: per interval
    the register rise unless the row is flagged, else the trapezoid of w capped at max_w over
    the rows' server-bounded `ts`."""
    wh = 0.0
    for before, after in zip(rows, rows[1:]):
        register_flagged = after.flag is not None and (
            e.IMPLAUSIBLE_REGISTER in after.flag or e.METER_RESET in after.flag
        )
        if before.wh is not None and after.wh is not None and not register_flagged:
            wh += after.wh - before.wh
        else:
            elapsed = after.ts - before.ts
            wh += (min(before.w, max_w) + min(after.w, max_w)) / 2 * elapsed / 3600
    return wh


def bill_problem(record, rows) -> str | None:
    """Why `record`'s billed energy is not what its rows say (None when it is)."""
    if not rows:
        return None if record.kwh == 0 else f"{record.kwh} kWh billed without a reading row"
    if not math.isclose(rows[-1].kwh, record.kwh, rel_tol=1e-9, abs_tol=1e-9):
        return f"{record.kwh} kWh billed, the last row says {rows[-1].kwh}"
    max_w = float((record.energy_state or {}).get("max_w", e.DEFAULT_MAX_POWER_W))
    wh = recompute_wh(rows, max_w)
    if not math.isclose(wh, record.kwh * 1000, rel_tol=1e-9, abs_tol=1e-6):
        return f"{record.kwh * 1000} Wh billed, {wh} Wh from the rows"
    return None


def metered(rows, record) -> list:
    """The rows of a session's meter readings (`metrics`): without the final register of the
    stop, emergency or idle status that ended it (its last row, received when it ended, 0 W)."""
    if rows and record.ended_at is not None:
        last = rows[-1]
        if last.received_at == record.ended_at and last.w == 0 and last.a == 0:
            return rows[:-1]
    return list(rows)


async def closed_session_bill_problems(storage) -> list[str]:
    """Every closed session of `storage` whose bill its readings do not give."""
    problems, offset = [], 0
    while True:
        records, total = await storage.list_sessions(limit=PAGE, offset=offset)
        for record in records:
            if record.ended_at is None or "timeline_ts" not in (record.energy_state or {}):
                continue  # open, or written by a test's own storage calls (not billed live)
            problem = bill_problem(record, await storage.readings(record.id))
            if problem is not None:
                problems.append(f"session {record.id} ({record.end_reason}): {problem}")
        offset += PAGE
        if offset >= total:
            return problems

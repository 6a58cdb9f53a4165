"""The dashboards' messages: what the server pushes and answers to dashboards, as JSON.

One dashboard protocol whatever protocol a station's charger speaks (docs/protocol.md): the
session core (server/core.py) builds these pushes; server/protocol.py re-exports them (the
seed's `error` is the same message, sent to chargers by the seed codec). Nothing here knows
sockets, session state or a charger protocol.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Message = dict[str, Any]  # one JSON object on the wire


def iso_z(unix_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as the seed writes timestamps."""
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error(message: str, code: str, **extra: Any) -> Message:
    return {"type": "error", "message": message, "code": code, **extra}


def subscribed(estacion_id: str) -> Message:
    return {"type": "subscribed", "estacionId": str(estacion_id)}


def init_one(charger: Message) -> Message:
    return {"type": "init", "charger": charger}


def init_all(chargers: list[Message]) -> Message:
    return {"type": "init", "chargers": chargers}


def status(charger_id: int, status_word: str) -> Message:
    return {"type": "status", "charger_id": charger_id, "status": status_word}


def metrics(
    session_id: int,
    charger_id: int,
    v: float,
    a: float,
    w: float,
    kwh: float,
    cost: float,
    time_s: float,
) -> Message:
    return {
        "type": "metrics",
        "session_id": session_id,
        "charger_id": charger_id,
        "v": v,
        "a": a,
        "w": w,
        "kwh": round(kwh, 3),
        "cost": round(cost, 2),
        "time": int(time_s),
    }


def session_started(
    session_id: int, charger_id: int, user_name: str | None, started_at: float
) -> Message:
    return {
        "type": "session_started",
        "session_id": session_id,
        "charger_id": charger_id,
        "user_name": user_name,
        "timestamp": iso_z(started_at),
    }


def session_ended(
    session_id: int, charger_id: int, kwh: float, cost: float, duration_s: float, reason: str
) -> Message:
    return {
        "type": "session_ended",
        "session_id": session_id,
        "charger_id": charger_id,
        "kwh": round(kwh, 3),
        "cost": round(cost, 2),
        "duration": int(duration_s),
        "reason": reason,
    }


def emergency(charger_id: int, session_id: int | None, at: float) -> Message:
    return {
        "type": "emergency",
        "charger_id": charger_id,
        "session_id": session_id,
        "timestamp": iso_z(at),
    }


def alert(charger_id: int, session_id: int | None, kind: str, message: str, at: float) -> Message:
    """To dashboards: the charger stopped charging by itself for a fault (`kind` is the stop's
    reason, `message` the stored alert's Spanish text)."""
    return {
        "type": "alert",
        "charger_id": charger_id,
        "session_id": session_id,
        "kind": kind,
        "message": message,
        "timestamp": iso_z(at),
    }


def encode(message: Message) -> str:
    """Compact JSON text; non-ASCII kept (user names like 'Juan Pérez')."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

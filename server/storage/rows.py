"""The shape of a row, for both backends: the column lists they SELECT and the functions that
turn those rows into records (server/storage/records.py). No SQL is run here and no I/O; a row
is any sequence (a sqlite3 tuple, an asyncpg Record).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .records import Card, SessionRecord, Station
from .values import decode_state

Row = Sequence[Any]

# `SELECT {X_COLUMNS} WHERE ...`: each names its table (and join)
SESSION_COLUMNS = """
    s.id, s.station_id, s.user_id, u.name, s.card_uid, s.started_at, s.ended_at,
    s.kwh, s.cost, s.tariff, s.end_reason, s.energy_state
    FROM sessions s JOIN users u ON u.id = s.user_id
"""
CARD_COLUMNS = "c.uid, c.user_id, u.name, c.enabled FROM cards c JOIN users u ON u.id = c.user_id"
ALERT_COLUMNS = "id, station_id, session_id, kind, created_at, detail, acknowledged_at FROM alerts"
STATION_COLUMNS = (
    "id, name, tariff, max_power_w, protocol, charge_point_id, offline_auth FROM stations"
)
AUTH_LIST_COLUMNS = "version, offline, cards, created_at FROM auth_lists"
# a reading's columns in Reading's field order: what a batch inserts (SQLite) or copies
# (PostgreSQL) and what `readings()` reads back
READING_COLUMNS = (
    "session_id",
    "ts",
    "v",
    "a",
    "w",
    "wh",
    "kwh",
    "charger_ts",
    "received_at",
    "flag",
)

# an offline card list as the contract hands it out: (version, offline, cards, created_at)
AuthList = tuple[int, bool, str, float]


def session_from_row(row: Row) -> SessionRecord:
    """A row of SESSION_COLUMNS; an unreadable energy_state is logged and read as {}."""
    id_, station_id, user_id, user_name, card_uid, started_at, ended_at, *rest = row
    kwh, cost, tariff, end_reason, state_json = rest
    return SessionRecord(
        id_,
        station_id,
        user_id,
        user_name,
        card_uid,
        started_at,
        ended_at,
        kwh,
        cost,
        tariff,
        end_reason,
        decode_state(state_json, id_),
    )


def station_from_row(row: Row) -> Station:
    """A row of STATION_COLUMNS (offline_auth is stored as 0/1)."""
    id_, name, tariff, max_power_w, protocol, charge_point_id, offline_auth = row
    return Station(id_, name, tariff, max_power_w, protocol, charge_point_id, bool(offline_auth))


def card_from_row(row: Row) -> Card:
    uid, user_id, user_name, enabled = row
    return Card(uid, user_id, user_name, bool(enabled))


def auth_list_from_row(row: Row) -> AuthList:
    return (row[0], bool(row[1]), row[2], row[3])


def totals_from_row(row: Row) -> dict[str, Any]:
    """session_totals' answer from its (count, kwh, cost, duration) row."""
    count, kwh, cost, duration = row
    return {"sessions": count, "kwh": float(kwh), "cost": float(cost), "duration": int(duration)}

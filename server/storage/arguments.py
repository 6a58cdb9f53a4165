"""The argument checks of the contract's writes, shared by both backends: each function checks
one write's arguments (server/storage/values.py, ValueError before any SQL runs) and returns
them as the tuple the backends bind, in the order of their SQL. Pure; no SQL, no I/O.
"""

from __future__ import annotations

from server.uids import normalize_uid

from .values import (
    check_charge_point_id,
    check_count,
    check_id,
    check_max_power,
    check_name,
    check_number,
    check_tariff,
    encode_state,
)


def epoch_arg(epoch: object) -> int | None:
    """A write's fencing epoch (server/storage/contract.py): None or a whole number from 0."""
    return None if epoch is None else check_count(epoch, "epoch")


def claim_args(station_id: object, owner: object) -> tuple[str, int]:
    """(owner, station id) of claim_station."""
    return check_name(owner, "owner"), check_id(station_id, "station id")


def session_start_args(
    station_id: object,
    user_id: object,
    card_uid: object,
    started_at: object,
    tariff: object,
    energy_state: object,
    offline_local_id: object,
) -> tuple[int, int, str, float, float, str, int | None]:
    """(station_id, user_id, card_uid, started_at, tariff, energy_state, offline_local_id)
    of create_session; the card UID normalized, the energy state as JSON text."""
    return (
        check_id(station_id, "station_id"),
        check_id(user_id, "user_id"),
        normalize_uid(card_uid),
        check_number(started_at, "started_at"),
        check_tariff(tariff),
        encode_state(energy_state),
        None if offline_local_id is None else check_id(offline_local_id, "local id"),
    )


def session_end_args(
    session_id: object,
    ended_at: object,
    kwh: object,
    cost: object,
    reason: object,
    energy_state: object,
) -> tuple[float, float, float, str, str, int]:
    """(ended_at, kwh, cost, end_reason, energy_state, session id) of end_session."""
    return (
        check_number(ended_at, "ended_at"),
        check_number(kwh, "kwh"),
        check_number(cost, "cost"),
        check_name(reason, "reason"),
        encode_state(energy_state),
        check_id(session_id, "session_id"),
    )


def alert_args(
    station_id: object, session_id: object, kind: object, created_at: object, detail: object
) -> tuple[int, int | None, str, float, str]:
    """(station_id, session_id, kind, created_at, detail) of add_alert."""
    session = None if session_id is None else check_id(session_id, "session_id")
    if not isinstance(detail, str):
        raise ValueError("detail must be text")
    return (
        check_id(station_id, "station_id"),
        session,
        check_name(kind, "kind"),
        check_number(created_at, "created_at"),
        detail,
    )


def acknowledge_args(alert_id: object, acknowledged_at: object) -> tuple[float, int]:
    """(acknowledged_at, alert id) of acknowledge_alert."""
    return check_number(acknowledged_at, "acknowledged_at"), check_id(alert_id, "alert_id")


def latch_args(station_id: object, latched_at: object) -> tuple[float | None, int]:
    """(latched_at or None, station id) of set_emergency_latch."""
    return (
        None if latched_at is None else check_number(latched_at, "latched_at"),
        check_id(station_id, "station id"),
    )


def station_args(
    name: object,
    tariff: object,
    station_id: object,
    max_power_w: object,
    charge_point_id: object,
) -> tuple[int | None, str, float, float, str, str | None]:
    """(id or None, name, tariff, max_power_w, protocol, charge_point_id) of add_station: a
    charge point id makes an OCPP 1.6J station ("ocpp16"), none a seed one."""
    checked_name, checked_tariff = check_name(name, "station name"), check_tariff(tariff)
    power = check_max_power(max_power_w)
    checked_id = None if station_id is None else check_id(station_id, "station id")
    checked_cp, protocol = None, "seed"
    if charge_point_id is not None:
        checked_cp, protocol = check_charge_point_id(charge_point_id), "ocpp16"
    return checked_id, checked_name, checked_tariff, power, protocol, checked_cp


def card_args(uid: object, user_id: object) -> tuple[str, int]:
    """(normalized uid, user id) of add_card."""
    return normalize_uid(uid), check_id(user_id, "user id")


def auth_list_args(station_id: object, created_at: object) -> tuple[int, float]:
    """(station id, created_at) of save_auth_list."""
    return check_id(station_id, "station id"), check_number(created_at, "created_at")

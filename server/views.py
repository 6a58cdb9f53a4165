"""Storage records as the JSON the dashboards read, for the HTTP API and the WebSocket alike.

Pure: a record in, a dict out (docs/protocol.md names the fields). server/api.py answers
`/api/*` with them and server/dashboard_messages.py its `admin_result`s.
"""


def session_duration(record, now: float) -> int:
    end = record.ended_at if record.ended_at is not None else now
    return max(0, int(end - record.started_at))


def session_json(record, now: float) -> dict:
    return {
        "id": record.id,
        "station_id": record.station_id,
        "user_id": record.user_id,
        "user_name": record.user_name,
        "card_uid": record.card_uid,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "open": record.ended_at is None,
        "duration": session_duration(record, now),
        "kwh": round(record.kwh, 3),
        "cost": round(record.cost, 2),
        "tariff": record.tariff,
        "end_reason": record.end_reason,
    }


def user_json(user) -> dict:
    return {"id": user.id, "name": user.name}


def card_json(card) -> dict:
    return {
        "uid": card.uid,
        "user_id": card.user_id,
        "user_name": card.user_name,
        "enabled": card.enabled,
    }


def station_json(station) -> dict:
    return {
        "id": station.id,
        "name": station.name,
        "tariff": station.tariff,
        "protocol": station.protocol,
        "charge_point_id": station.charge_point_id,
        "max_power_w": station.max_power_w,
        "offline_auth": station.offline_auth,
    }


def reading_json(reading) -> dict:
    """`ts` is the reading's place on the session's server-bounded timeline; `charger_ts` what
    the charger claimed; `flag` why it was not billed as claimed (docs/protocol.md)."""
    return {
        "ts": reading.ts,
        "v": reading.v,
        "a": reading.a,
        "w": reading.w,
        "wh": reading.wh,
        "kwh": None if reading.kwh is None else round(reading.kwh, 4),
        "charger_ts": reading.charger_ts,
        "flag": reading.flag,
    }


def alert_json(alert) -> dict:
    return {
        "id": alert.id,
        "station_id": alert.station_id,
        "session_id": alert.session_id,
        "kind": alert.kind,
        "created_at": alert.created_at,
        "detail": alert.detail,
        "acknowledged_at": alert.acknowledged_at,
    }


def rounded_totals(totals: dict) -> dict:
    return {**totals, "kwh": round(totals["kwh"], 3), "cost": round(totals["cost"], 2)}

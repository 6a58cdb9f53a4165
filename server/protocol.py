"""The JSON wire: the seed protocol's frames and the dashboards' messages.

Owns every message shape and every close code of docs/protocol.md. Inbound frames are turned
into the neutral events of server/vocabulary.py (the seed's names `Metrics`, `Stop`,
`Emergency`, `NfcScan` are kept as aliases of them) or rejected with
`ProtocolError(code, message)`; the refusal codes and statuses are the vocabulary's, re-exported
here. The seed charger codec (server/codecs/seed.py) and the dashboards' encoder use the
builders below; nothing here touches sockets, the database or session state. Field names
are the seed's, as spelled there. Validation is hand-written (a table of field rules) because
the rules are few and small, and a schema library would be a second language for readers of
a 200-line module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, cast

from server.ids import MAX_ID, is_positive_id  # noqa: F401 - MAX_ID re-exported

# the dashboards' messages (server/pushes.py), re-exported: the seed's `error` is the same
from server.pushes import (  # noqa: F401 - re-exported: p.status(...) etc.
    Message,
    alert,
    emergency,
    encode,
    error,
    init_all,
    init_one,
    iso_z,
    metrics,
    session_ended,
    session_started,
    status,
    subscribed,
)

# --- refusal codes carried by {"type":"error","message":...,"code":...}, statuses (seed
# spelling), charger states and stop reasons: the neutral vocabulary's, spelled as the seed does
from server.vocabulary import (  # noqa: F401 - re-exported: p.CARD_UNKNOWN etc.
    CARD_DISABLED,
    CARD_UNKNOWN,
    CARGANDO,
    CHARGER_OFFLINE,
    DESCONECTADO,
    DISPONIBLE,
    DUPLICATE,
    EMERGENCIA,
    FORBIDDEN,
    INVALID_MESSAGE,
    METER_FAILURE,
    NO_ACTIVE_SESSION,
    NOT_FOUND,
    NOT_SUPPORTED,
    OFFLINE_LIMIT,
    OFFLINE_START_REFUSED,
    RATE_LIMITED,
    SERVER_ERROR,
    SESSION_MISMATCH,
    SESSION_TOO_RECENT,
    STATES,
    STATION_BUSY,
    STATION_FAULT,
    STOP_REASONS,
    CardRead,
    ChargerStop,
    EmergencyReport,
    MeterSample,
    OfflineStartReport,
    RemoteStop,
    StatusReport,
)

# --- close codes (seed: 4003-4006; added: 4001, 4008) -------------------------------------
CLOSE_BAD_ROLE = 4001
CLOSE_BAD_TOKEN = 4003
CLOSE_PUBLISHER_WITHOUT_STATION = 4004
CLOSE_STATION_NOT_FOUND = 4005
CLOSE_CLIENT_WITHOUT_STATION = 4006
CLOSE_PUBLISHER_REPLACED = 4008

ROLE_PUBLISHER = "publisher"
ROLE_CLIENT = "client"
ALL_STATIONS = "all"

# Physical limits of a single-phase PZEM-004T (100 A variant) with generous margins: a value
# outside them is a broken frame, not a measurement.
MAX_VOLTS = 500.0
MAX_AMPS = 200.0
MAX_WATTS = 50_000.0
MAX_METER_WH = float(2**32)  # the PZEM energy register is 32 bits of Wh
MAX_TS = 1e11  # seconds; larger means the sender is not speaking unix seconds at all


class ProtocolError(ValueError):
    """An inbound frame the protocol does not allow; `code` goes into the error reply."""

    def __init__(self, message: str, code: str = INVALID_MESSAGE):
        super().__init__(message)
        self.code = code
        self.message = message


# --- inbound messages: the seed's names of the neutral events -------------------------------
NfcScan = CardRead
Metrics = MeterSample
Stop = ChargerStop
Emergency = EmergencyReport


# a field's rule: (the field's name for the error, the JSON value) -> the checked value
Rule = Callable[[str, Any], Any]
# type -> (the message's constructor, {field: (rule, required)})
Table = dict[str, tuple[Callable[..., Any], dict[str, tuple[Rule, bool]]]]
PublisherMessage = CardRead | MeterSample | ChargerStop | EmergencyReport | StatusReport


def _number(lo: float, hi: float) -> Rule:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{name} must be a number")
        # the bounds are finite, so this also refuses NaN (every comparison is false) and
        # +-inf, and unlike math.isfinite() never overflows on a huge JSON integer
        if not lo <= value <= hi:
            raise ProtocolError(f"{name} must be a finite number between {lo:g} and {hi:g}")
        return float(value)

    return check


def _session_id(name: str, value: Any) -> int:
    if not is_positive_id(value):
        raise ProtocolError(f"{name} must be a positive integer")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ProtocolError(f"{name} must be a non-empty string")
    return value


def _one_of(choices: tuple[str, ...]) -> Rule:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ProtocolError(f"{name} must be one of {', '.join(choices)}")
        return value

    return check


_state, _stop_reason = _one_of(STATES), _one_of(STOP_REASONS)


_VOLTS, _AMPS, _WATTS = _number(0, MAX_VOLTS), _number(0, MAX_AMPS), _number(0, MAX_WATTS)
_WH, _TS = _number(0, MAX_METER_WH), _number(0, MAX_TS)

_PUBLISHER_MESSAGES: Table = {
    "nfc_scan": (lambda nfc_uid: CardRead(nfc_uid), {"nfc_uid": (_text, True)}),
    "metrics": (
        Metrics,
        {
            "session_id": (_session_id, True),
            "v": (_VOLTS, True),
            "a": (_AMPS, True),
            "w": (_WATTS, True),
            "ts": (_TS, False),
            "wh": (_WH, False),
        },
    ),
    "stop": (
        Stop,
        {
            "session_id": (_session_id, False),
            "wh": (_WH, False),
            "ts": (_TS, False),
            "reason": (_stop_reason, False),
        },
    ),
    "emergency": (
        Emergency,
        {"session_id": (_session_id, False), "wh": (_WH, False), "ts": (_TS, False)},
    ),
    "offline_start": (
        OfflineStartReport,
        {
            "local_id": (_session_id, True),
            "uid": (_text, True),
            "version": (_session_id, True),
            "ts": (_TS, False),
            "wh": (_WH, False),
        },
    ),
    "status": (
        StatusReport,
        {"state": (_state, True), "session_id": (_session_id, False), "wh": (_WH, False)},
    ),
}

_CLIENT_MESSAGES: Table = {
    "stop": (RemoteStop, {"session_id": (_session_id, False), "charger_id": (_session_id, False)}),
}


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """Decode one WebSocket frame into a JSON object with a string `type`."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError("binary frames are not accepted; send JSON text")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("message must be a JSON object")
    if not isinstance(data.get("type"), str):
        raise ProtocolError("message must have a string 'type'")
    return data


def _parse(frame: str | bytes | dict[str, Any], table: Table, who: str) -> Any:
    data = frame if isinstance(frame, dict) else decode_frame(frame)
    kind = data["type"]
    if kind not in table:
        raise ProtocolError(f"unknown message type {kind[:40]!r} for a {who}")
    cls, fields = table[kind]
    values: dict[str, Any] = {}
    for name, (rule, required) in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                raise ProtocolError(f"{kind}: missing field '{name}'")
            continue
        values[name] = rule(f"{kind}.{name}", value)
    if kind == "status" and values["state"] == "charging" and "session_id" not in values:
        raise ProtocolError("status: state 'charging' needs a session_id")
    return cls(**values)


def parse_publisher_message(frame: str | bytes | dict[str, Any]) -> PublisherMessage:
    """Parse a frame (or its decoded object) from a charger; raise ProtocolError if invalid."""
    return cast(PublisherMessage, _parse(frame, _PUBLISHER_MESSAGES, "publisher"))


def parse_client_message(frame: str | bytes | dict[str, Any]) -> RemoteStop:
    """Parse a frame (or its decoded object) from a dashboard; raise ProtocolError if invalid."""
    return cast(RemoteStop, _parse(frame, _CLIENT_MESSAGES, "client"))


# --- outbound messages of the seed protocol to chargers -------------------------------------
def connected(estacion_id: str) -> Message:
    return {"type": "connected", "role": ROLE_PUBLISHER, "estacionId": str(estacion_id)}


def ack(n: int) -> Message:
    """To a charger: the first `n` data frames it sent on this connection are committed."""
    return {"type": "ack", "n": n}


def sync_request() -> Message:
    return {"type": "sync_request", "from": "server"}


def start(
    session_id: int, user_name: str, local_id: int | None = None, end: bool = False
) -> Message:
    """`local_id`: the charger's offline start this session stands for; `end`: its card is
    disabled now (the charger ends the session)."""
    message: Message = {"type": "start", "session_id": session_id, "user_name": user_name}
    if local_id is not None:
        message["local_id"] = local_id
        if end:
            message["end"] = True
    return message


def auth_list(version: int, offline: bool, cards: Iterable[str], sig: str) -> Message:
    return {
        "type": "auth_list",
        "version": version,
        "offline": offline,
        "cards": list(cards),
        "sig": sig,
    }


def stop(session_id: int) -> Message:
    return {"type": "stop", "session_id": session_id}

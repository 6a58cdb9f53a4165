"""The OCPP 1.6J codec: OCPP payloads <-> the neutral vocabulary (server/vocabulary.py).

Pure translation, no I/O. OCPP is request/response, so unlike the seed codec most neutral
commands are not frames of their own: StartCharging and Refusal become the `idTagInfo` of the
StartTransaction/Authorize answer, StopCharging becomes a RemoteStopTransaction call, and
Welcome (the BootNotification answer), Acknowledge (OCPP's CALLRESULT is its acknowledgement)
and RequestStatus (TriggerMessage, not yet supported) send nothing. The endpoint
(server/ocpp.py) registers each charge point with the hub under a link whose encoder is this
codec; `encode` hands the command itself to the link, which knows the call in progress.

Inbound:
    StatusNotification  -> StatusReport (Available/Preparing/Finishing/Unavailable: idle, only
                           without an open session; Charging/SuspendedEV/SuspendedEVSE:
                           charging; Faulted: fault, alerted, latched, the session ended)
    MeterValues         -> MeterSample (Energy.Active.Import.Register in Wh, kWh converted;
                           Voltage, Current.Import, Power.Active.Import as v/a/w)
    StopTransaction     -> ChargerStop (meterStop in Wh, timestamp)
    Authorize/StartTransaction idTag -> CardRead
"""

from __future__ import annotations

from datetime import datetime

from server import protocol as p
from server import vocabulary as v
from server.vocabulary import ChargerStop, MeterSample, StatusReport

NAME = "ocpp16"
SUBPROTOCOL = "ocpp1.6"

ACCEPTED, BLOCKED, INVALID, CONCURRENT = "Accepted", "Blocked", "Invalid", "ConcurrentTx"

# a refused card's code -> the idTagInfo status the charge point shows
_ID_TAG_STATUS = {
    v.CARD_UNKNOWN: INVALID,
    v.CARD_DISABLED: BLOCKED,
    v.STATION_BUSY: CONCURRENT,
}

_IDLE = ("Available", "Preparing", "Finishing", "Unavailable", "Reserved")
_CHARGING = ("Charging", "SuspendedEV", "SuspendedEVSE")
FAULTED = "Faulted"

REGISTER = "Energy.Active.Import.Register"
_LIVE = {"Voltage": "v", "Current.Import": "a", "Power.Active.Import": "w"}
# the seed protocol's physical bounds (server/protocol.py), so an OCPP reading is held to the
# same: a negative power or register, or one beyond the meter's range, is not a measurement
_BOUND = {"v": p.MAX_VOLTS, "a": p.MAX_AMPS, "w": p.MAX_WATTS, REGISTER: p.MAX_METER_WH}
_SCALE = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "V": 1.0, "A": 1.0}


class Ocpp16Codec:
    """The hub's encoder for OCPP links: a command goes to the link unchanged."""

    name = NAME

    @staticmethod
    def encode(command):
        return command

    message = encode


OCPP16 = Ocpp16Codec()


def id_tag_status(refusal_code: str) -> str:
    return _ID_TAG_STATUS.get(refusal_code, INVALID)


def timestamp(text: str | None) -> float | None:
    """An OCPP dateTime (ISO 8601, 'Z' or an offset) as unix seconds; None when absent or
    unreadable (the server's receive time then stands for it)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def status_report(status: str, session_id: int | None) -> StatusReport | None:
    """A connector's StatusNotification as the charger's physical state; None when it says
    nothing about the session (an unknown status)."""
    if status == FAULTED:
        return StatusReport("fault", session_id)
    if status in _CHARGING:
        return StatusReport("charging", session_id) if session_id is not None else None
    if status in _IDLE:
        # with a session open, StopTransaction (with its meterStop) closes it, not the status
        return StatusReport("idle") if session_id is None else None
    return None


def _number(sampled: dict) -> float | None:
    try:
        value = float(sampled["value"])
    except (KeyError, TypeError, ValueError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value * _SCALE.get(sampled.get("unit") or "", 1.0)


def meter_samples(session_id: int, meter_value: list) -> list[MeterSample]:
    """MeterValues' meterValue list as one MeterSample per timestamp (phases and other
    measurands are ignored; a sample without a register is still live data)."""
    samples = []
    for entry in meter_value:
        live = {"v": 0.0, "a": 0.0, "w": 0.0}
        register = None
        for sampled in entry.get("sampled_value") or entry.get("sampledValue") or []:
            if sampled.get("phase"):
                continue
            measurand = sampled.get("measurand") or REGISTER
            field = _LIVE.get(measurand, measurand)
            value = meter_number(_number(sampled), _BOUND.get(field))
            if value is None:
                continue
            if measurand == REGISTER:
                register = value
            elif measurand in _LIVE:
                live[field] = value
        samples.append(
            MeterSample(
                session_id,
                live["v"],
                live["a"],
                live["w"],
                timestamp(entry.get("timestamp")),
                register,
            )
        )
    return samples


def meter_number(value: float | None, bound: float | None = p.MAX_METER_WH) -> float | None:
    """`value` when it is a measurement within 0..bound (the seed's limits), else None."""
    if value is None or bound is None or not 0 <= value <= bound:
        return None
    return float(value)


def charger_stop(session_id: int, meter_stop: int, at: str | None) -> ChargerStop:
    return ChargerStop(session_id, meter_number(meter_stop), timestamp(at))

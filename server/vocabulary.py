"""The protocol-neutral words between the session core and the chargers' codecs.

A charger protocol (server/codecs/) turns what its chargers send into the EVENTS below and the
COMMANDS the core and the adapters address to a charger into its own frames. Nothing here
knows JSON, WebSockets or a wire format; the seed protocol (server/protocol.py) is one codec
of these words, OCPP 1.6J will be another. The codes (refusal codes, statuses, stop reasons,
charger states) are spelled as the seed spells them, since the dashboards and the database
use those words whatever protocol a charger speaks.

Events (charger -> core):
    CardRead(uid)                            a card was presented; uid as read, not normalized
    CardPresented(uid, card, tariff)         the same after the adapter looked the card up
    MeterSample(session_id, v, a, w, ts, wh) a meter sample during a session
    ChargerStop(session_id, wh, ts, reason)  the charger ended the session itself
    EmergencyReport(session_id, wh, ts)      the emergency button (the relay is already open)
    StatusReport(state, session_id, wh)      the charger's physical state (reconciliation)
    RemoteStop(session_id, charger_id)       a dashboard asks to stop (not from a charger)
    OfflineStartReport(local_id, uid, version, ts, wh)
                                             the charger started a listed card while offline
    OfflineStartPresented(...)               the same after the adapter checked it (core input)

Commands (server -> charger):
    Welcome(station_id)                      the connection is admitted
    StartCharging(session_id, user_name, local_id, end)
                                             close the relay for this session; with local_id:
                                             the charger's offline start became this session
                                             (end: its card is disabled now, end it)
    StopCharging(session_id)                 open the relay
    Refusal(message, code)                   a card refused, a frame refused, an error
    RequestStatus()                          report your state now (a dashboard subscribed)
    Acknowledge(n)                           the first n frames of this connection are durable
    AuthList(version, offline, cards, sig)   the signed list of cards it may start offline
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# --- refusal codes -------------------------------------------------------------------------
INVALID_MESSAGE = "INVALID_MESSAGE"
CARD_UNKNOWN = "CARD_UNKNOWN"
CARD_DISABLED = "CARD_DISABLED"
STATION_BUSY = "STATION_BUSY"
STATION_FAULT = "STATION_FAULT"
SESSION_MISMATCH = "SESSION_MISMATCH"
SESSION_TOO_RECENT = "SESSION_TOO_RECENT"  # tap-again-to-stop before CARD_STOP_MIN_AGE
CHARGER_OFFLINE = "CHARGER_OFFLINE"
NO_ACTIVE_SESSION = "NO_ACTIVE_SESSION"
SERVER_ERROR = "SERVER_ERROR"
OFFLINE_START_REFUSED = "OFFLINE_START_REFUSED"  # an offline start the server does not accept
# ... and the ones only the dashboards' side answers (admin messages, roles, rate limit, HTTP)
NOT_FOUND = "NOT_FOUND"
DUPLICATE = "DUPLICATE"
FORBIDDEN = "FORBIDDEN"
RATE_LIMITED = "RATE_LIMITED"
NOT_SUPPORTED = "NOT_SUPPORTED"  # the station's protocol has no such thing (offline auth on OCPP)

# --- station statuses (seed spelling, what dashboards show) ---------------------------------
DESCONECTADO = "desconectado"
DISPONIBLE = "disponible"
CARGANDO = "cargando"
EMERGENCIA = "emergencia"

# --- charger states a StatusReport carries ---------------------------------------------------
STATES = ("idle", "charging", "fault")

# why a charger ended a session by itself (ChargerStop.reason): the meter was silent or
# corrupt while charging, or it charged too long without the server (alerted faults); or the
# board died during it and reports it from its journal after the reboot: a power-on or
# brown-out reset, or a watchdog/soft reset (INTERRUPTED: the session's own end reason)
METER_FAILURE = "meter_failure"
OFFLINE_LIMIT = "offline_limit"
POWER_LOSS = "power_loss"
CHARGER_RESET = "charger_reset"
INTERRUPTED = (POWER_LOSS, CHARGER_RESET)
STOP_REASONS = (METER_FAILURE, OFFLINE_LIMIT, *INTERRUPTED)


# --- events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardRead:
    uid: str  # as the reader gave it; normalized by server.uids in the adapter


class KnownCard(Protocol):
    """What the core reads of a card the storage knows (server/storage/records.py: Card)."""

    @property
    def user_id(self) -> int: ...
    @property
    def user_name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...


@dataclass(frozen=True)
class CardPresented:
    """A CardRead after the adapter normalized the UID and looked the card up."""

    uid: str
    card: KnownCard | None  # the storage's Card, or None for an unknown card
    tariff: float | None = None  # the station's current tariff, frozen into a new session


@dataclass(frozen=True)
class MeterSample:
    session_id: int
    v: float
    a: float
    w: float
    ts: float | None = None
    wh: float | None = None  # the meter's energy register


@dataclass(frozen=True)
class ChargerStop:
    session_id: int | None = None
    wh: float | None = None
    ts: float | None = None
    reason: str | None = None  # one of STOP_REASONS; None = the STOP button


@dataclass(frozen=True)
class EmergencyReport:
    session_id: int | None = None
    wh: float | None = None
    ts: float | None = None


@dataclass(frozen=True)
class StatusReport:
    state: str  # idle | charging | fault
    session_id: int | None = None
    wh: float | None = None


@dataclass(frozen=True)
class RemoteStop:
    """A dashboard's stop: the station comes from its subscription or `charger_id`."""

    session_id: int | None = None
    charger_id: int | None = None


@dataclass(frozen=True)
class OfflineStartReport:
    """The charger started a session offline under its own `local_id` (docs/protocol.md)."""

    local_id: int
    uid: str  # as the charger sent it; normalized by the adapter
    version: int  # the version of the signed list that allowed it
    ts: float | None = None  # when, by the charger's clock
    wh: float | None = None  # the meter register when it started


@dataclass(frozen=True)
class OfflineStartPresented:
    """An OfflineStartReport after the adapter looked it up (server/offline_auth.py)."""

    local_id: int
    uid: str  # normalized
    card: KnownCard | None  # the storage's Card, or None: unknown card
    listed: bool  # in the list of that version signed for this station, offline allowed
    earliest: float | None  # the earliest start the server can defend (None: not known)
    existing: int | None = None  # the session already created for this local_id (a replay)
    ts: float | None = None
    wh: float | None = None
    tariff: float | None = None


# --- commands --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Welcome:
    station_id: int


@dataclass(frozen=True)
class StartCharging:
    session_id: int
    user_name: str
    local_id: int | None = None  # the charger's offline start this session now stands for
    end: bool = False  # that offline start's card is no longer enabled: end the session now


@dataclass(frozen=True)
class StopCharging:
    session_id: int


@dataclass(frozen=True)
class Refusal:
    message: str  # Spanish when a person may read it
    code: str  # one of the refusal codes above
    local_id: int | None = None  # the refused offline start (OFFLINE_START_REFUSED)


@dataclass(frozen=True)
class RequestStatus:
    pass


@dataclass(frozen=True)
class Acknowledge:
    n: int


@dataclass(frozen=True)
class AuthList:
    version: int
    offline: bool
    cards: tuple[str, ...]  # sorted normalized UIDs
    sig: str  # HMAC-SHA256 hex (server/offline_auth.py)

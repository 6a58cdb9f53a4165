"""The rows Storage hands out and takes in: frozen dataclasses, no SQL, no I/O.

Times are unix seconds (float, UTC); ids are integers; money and energy are floats.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Station:
    id: int
    name: str
    tariff: float  # price per kWh
    max_power_w: float = 22_000.0  # plausibility limit of its energy readings (server/energy.py)
    protocol: str = "seed"  # what its charger speaks: "seed" or "ocpp16" (server/codecs/)
    charge_point_id: str | None = None  # the OCPP charge point identity; None for seed stations
    # may its charger start a listed card offline (issue 13, server/offline_auth.py); stored
    # for every station, it applies to seed stations only (OCPP stations get no list)
    offline_auth: bool = True


@dataclass(frozen=True)
class User:
    id: int
    name: str


@dataclass(frozen=True)
class Card:
    uid: str  # normalized with server.uids.normalize_uid
    user_id: int
    user_name: str
    enabled: bool


@dataclass(frozen=True)
class SessionRecord:
    id: int
    station_id: int
    user_id: int
    user_name: str
    card_uid: str
    started_at: float
    ended_at: float | None
    kwh: float
    cost: float
    tariff: float
    end_reason: str | None
    energy_state: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Reading:
    session_id: int
    ts: float
    v: float | None
    a: float | None
    w: float | None
    wh: float | None  # the meter's cumulative register, when the charger sends it
    kwh: float | None  # the session's energy after this reading
    # `ts` is the reading's place on the session's server-bounded timeline; these say what the
    # charger claimed, when the server received it, and why it was not billed as claimed
    charger_ts: float | None = None
    received_at: float | None = None
    flag: str | None = None  # comma-separated server/energy.py flags; None = as claimed


@dataclass(frozen=True)
class Alert:
    id: int
    station_id: int
    session_id: int | None
    kind: str
    created_at: float
    detail: str
    acknowledged_at: float | None


@dataclass(frozen=True)
class OfflineAuthState:
    """A seed station's offline authorization as the admin page shows it (issue 13)."""

    station_id: int
    offline_auth: bool  # the setting: may its charger start a listed card offline
    keyed: bool  # it has a station key (only a keyed charger gets lists)
    # the newest list signed for it: (version, offline, cards joined by ",", created_at)
    latest: tuple[int, bool, str, float] | None

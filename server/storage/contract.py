"""The storage contract: `Storage`, the typed protocol every backend implements
(server/storage/sqlite/, server/storage/postgres/), and the numbers both share.

The server, the admin CLI and the tests use only what is declared here; docs/architecture.md
("Storage contract") says what each call means. Both backends raise the same errors
(server/storage/errors.py) and ValueError for bad values before any SQL runs.

Station ownership (several server processes on one PostgreSQL): the process holding a
charger's socket claims its station, `claim_station(station_id, owner) -> epoch`, which moves
the station's epoch one up (the newest claimer wins). A session create/end, a progress row and
the emergency latch may carry the caller's `epoch`; when the station's epoch has moved on the
write is refused with `StaleOwner` (a progress row is simply not applied: its UPDATE matches
no row; the new owner's rows carry the totals).
`epoch=None` writes unconditionally (single-process servers, the admin CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .records import Alert, Card, OfflineAuthState, Reading, SessionRecord, Station, User

MAX_PAGE = 1000


class EnergyState(Protocol):
    """A live energy account (server/energy.py EnergyAccount), encoded when its batch is taken."""

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Storage(Protocol):
    """What a storage backend offers; see docs/architecture.md ("Storage contract")."""

    backend: str  # "sqlite" or "postgres"
    flush_interval: float
    max_queued_readings: int

    async def close(self) -> None: ...

    # batching, back-pressure, durability marks (server/storage/batcher.py)
    def queue_reading(self, reading: Reading) -> None: ...
    def queue_progress(
        self,
        session_id: int,
        kwh: float,
        cost: float,
        energy_state: dict[str, Any] | EnergyState,
        epoch: int | None = None,
    ) -> None: ...
    async def flush(self) -> int: ...
    @property
    def full(self) -> bool: ...
    async def wait_for_room(self) -> None: ...
    def write_mark(self) -> int: ...
    @property
    def durable_mark(self) -> int: ...
    async def wait_durable(self, mark: int) -> None: ...
    @property
    def failed_flushes(self) -> int: ...  # periodic flushes failed in a row (0: the last worked)

    # station ownership
    async def claim_station(self, station_id: int, owner: str) -> int: ...
    async def station_owner(self, station_id: int) -> tuple[str | None, int]: ...

    # sessions
    async def create_session(
        self,
        station_id: int,
        user_id: int,
        card_uid: str,
        started_at: float,
        tariff: float,
        energy_state: dict[str, Any],
        epoch: int | None = None,
        offline_local_id: int | None = None,
    ) -> int: ...
    async def end_session(
        self,
        session_id: int,
        ended_at: float,
        kwh: float,
        cost: float,
        reason: str,
        energy_state: dict[str, Any],
        epoch: int | None = None,
    ) -> bool: ...
    async def open_sessions(self) -> list[SessionRecord]: ...
    async def get_session(self, session_id: int) -> SessionRecord | None: ...
    async def list_sessions(
        self,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[SessionRecord], int]: ...
    async def sessions_before(
        self,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, int] | None = None,
        limit: int = MAX_PAGE,
    ) -> list[SessionRecord]: ...
    async def session_totals(
        self,
        now: float,
        station_id: int | None = None,
        user_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]: ...
    async def readings(self, session_id: int) -> list[Reading]: ...

    # alerts, the emergency latch, what the core reloads at start
    async def add_alert(
        self,
        station_id: int,
        session_id: int | None,
        kind: str,
        created_at: float,
        detail: str = "",
    ) -> int: ...
    async def list_alerts(
        self, station_id: int | None = None, unacknowledged_only: bool = False, limit: int = 100
    ) -> list[Alert]: ...
    async def acknowledge_alert(self, alert_id: int, acknowledged_at: float) -> bool: ...
    async def set_emergency_latch(
        self, station_id: int, latched_at: float | None, epoch: int | None = None
    ) -> None: ...
    async def emergency_latches(self) -> dict[int, float]: ...
    async def recent_closed_sessions(self, per_station: int) -> dict[int, list[int]]: ...

    # reference data
    async def get_station(self, station_id: int) -> Station | None: ...
    async def list_stations(self) -> list[Station]: ...
    async def add_station(
        self,
        name: str,
        tariff: float,
        station_id: int | None = None,
        max_power_w: float = ...,
        charge_point_id: str | None = None,
    ) -> Station: ...
    async def station_by_charge_point(self, charge_point_id: str) -> Station | None: ...
    async def set_max_power(self, station_id: int, max_power_w: float) -> None: ...
    async def station_key_hash(self, station_id: int) -> str | None: ...
    async def set_station_key_hash(self, station_id: int, key_hash: str) -> None: ...
    async def set_tariff(self, station_id: int, tariff: float) -> None: ...
    async def add_user(self, name: str) -> User: ...
    async def list_users(self) -> list[User]: ...
    async def find_card(self, uid: str) -> Card | None: ...
    async def add_card(self, uid: str, user_id: int) -> Card: ...
    async def set_card_enabled(self, uid: str, enabled: bool) -> None: ...
    async def list_cards(self) -> list[Card]: ...
    async def is_empty(self) -> bool: ...

    # offline authorization (issue 13; server/offline_auth.py): lists are
    # (version, offline, cards joined by ",", created_at)
    async def offline_auth(self, station_id: int) -> bool | None: ...
    async def set_offline_auth(self, station_id: int, allowed: bool) -> None: ...
    async def offline_auth_states(self) -> list[OfflineAuthState]: ...
    async def offline_state(
        self, station_id: int
    ) -> tuple[str, bool, tuple[int, bool, str, float] | None] | None: ...
    async def last_seen(self, station_id: int) -> float | None: ...
    async def set_last_seen(self, station_id: int, at: float) -> None: ...
    async def offline_candidates(self) -> list[tuple[str, float | None]]: ...
    async def latest_auth_list(self, station_id: int) -> tuple[int, bool, str, float] | None: ...
    async def auth_list(
        self, station_id: int, version: int
    ) -> tuple[int, bool, str, float] | None: ...
    async def save_auth_list(
        self, station_id: int, offline: bool, cards: str, created_at: float
    ) -> int: ...
    async def offline_session(self, station_id: int, local_id: int) -> int | None: ...

    # maintenance
    async def backup(self, out: str | Path) -> Path: ...

    # one station as stored: what a fleet process reloads when it takes the station over
    # (server/cluster/fleet.py): (its open session, its last `recent` closed session ids
    # oldest first, whether its emergency latch is set)
    async def station_as_stored(
        self, station_id: int, recent: int
    ) -> tuple[SessionRecord | None, list[int], bool]: ...

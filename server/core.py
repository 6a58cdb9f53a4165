"""Pure session rules: events in, effects out. No sockets, no SQL, no clock, no wire format.

`SessionCore` holds every station's live state in memory (who is connected, the open session
and its energy account, the emergency latch) and decides what each event means. It speaks the
neutral vocabulary of server/vocabulary.py with chargers: the adapters (server/ws.py) feed it
the events a charger's codec (server/codecs/) decoded, with the current time, and the effect
runner (server/effects.py) carries out the returned effects in order: a command to a charger
(`ToCharger`, encoded by that charger's codec), a push to dashboards (`ToClients`, the
dashboards' JSON of server/pushes.py, the same whatever protocol the charger speaks), a
refusal to the sender (`Reply`), persistence through Storage. One handler per event type,
found through a routing table built from the `@on(...)` marks (the mobilityhouse/ocpp
pattern). Every entry point pushes a `status` message to dashboards whenever the station's
derived status changes.

Creating a session needs its database id, so a card tap is two steps: `CreateSession` effect
(the station is marked `starting` meanwhile), then the effect runner calls `session_created()`
(or `session_create_failed()`; `session_orphaned()` when the handling that asked for it was
cancelled while the database stored it: nobody was told, so a tap's session ends at once).

Attribution: a `session_id` in a charger's message must name its station's open session. One of
the station's own recently closed sessions (`StationState.recent`, the last RECENT_SESSIONS,
loaded from the database at start) is a replay (a charger resends what it could not confirm)
and is harmless; any other id gets SESSION_MISMATCH and changes nothing, except that an
emergency or a fault is still honoured for the station that reported it.

An interrupted session's `stop` (reason `power_loss`/`charger_reset`, sent from the charger's
journal after a reboot) carries a register from before the outage: its energy is bounded by the
server time up to the charger's last sign of life before its connection was lost (its last
event on that connection, or the connection's start; for a session reloaded from the database,
its stored last reading) plus METRICS_INTERVAL_S (`StationState.silent_since`, server/energy.py
"Interrupted stops"). So is the register of an `idle` status that ends a session when it is the
first message on a new connection (`StationState.fresh_link`: the charger came back reset).
The final register of a stop, emergency or idle status, when it counts, is queued as the
session's last reading row (`QueueReading`) before its `EndSession`.

The emergency latch (`StationState.emergency`) is persisted through `SetEmergencyLatch` when it
changes and loaded at start, so a restart neither forgets it nor alerts it twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from server import pushes
from server import vocabulary as v
from server.energy import AFTER_LINK_LOSS, DEFAULT_MAX_POWER_W, EnergyAccount, cost_of
from server.replacements import ReplacementBurst
from server.taps import TapGuard
from server.vocabulary import (
    CardPresented,
    ChargerStop,
    EmergencyReport,
    MeterSample,
    OfflineStartPresented,
    Refusal,
    RemoteStop,
    RequestStatus,
    StartCharging,
    StatusReport,
    StopCharging,
)

log = logging.getLogger(__name__)

# session end reasons (stored in sessions.end_reason)
LOCAL_STOP = "local_stop"
REMOTE_STOP = "remote_stop"
CARD_STOP = "card_stop"
EMERGENCY = "emergency"
FAULT = "fault"
CHARGER_RESET = v.CHARGER_RESET  # also a charger's `stop` reason after a reset (journal)
POWER_LOSS = v.POWER_LOSS  # a charger's `stop` reason: the board lost power mid-session
# a session the database stored after the handling that asked for it was cancelled: its `start`
# never reached the charger (its relay stayed open), so it is ended at once, nothing billed
START_INTERRUPTED = "start_interrupted"

# the alert stored and pushed (`alert`) once per session when a reading is an energy anomaly
ENERGY_ANOMALY = "energy_anomaly"
# taps (settings TAP_DEBOUNCE and CARD_STOP_MIN_AGE, server/config.py)
TAP_DEBOUNCE_S = 2.0  # a repeat of the same card's tap within this is ignored
CARD_STOP_MIN_AGE_S = 5.0  # tap-again-to-stop needs a session at least this old
# own closed sessions remembered per station to tell a replayed stop from a foreign id (a
# charger's outbox holds at most 32 events, so its replays name recent sessions)
RECENT_SESSIONS = 64
# an idle `status` this soon after a `start` the charger has not confirmed may have crossed the
# start on the wire (it answers a sync_request sent before it): the server asks again
START_CROSSING_S = 10.0
# alert kind: the station's publisher connection was replaced (4008) too often
DUPLICATE_CHARGER = "duplicate_charger"
# one metrics interval (the firmware's default `metrics_interval_s`): how long after its last
# sign of life a charger that then died may have gone on charging (an interrupted stop's bound)
METRICS_INTERVAL_S = 3.0

# the alert stored (and pushed to dashboards as `alert`) when a charger's `stop` says it ended
# the session by itself for a fault; the session still ends as `local_stop`
STOP_ALERTS = {
    v.METER_FAILURE: "Falla del medidor: sin lecturas válidas durante la carga",
    v.OFFLINE_LIMIT: "Carga detenida: demasiado tiempo sin conexión con el servidor",
}


# the event of a card presented, by the name the seed's `nfc_scan` gave it here
CardTap = CardPresented


# --- effects ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToCharger:
    """A neutral command (server/vocabulary.py) to the station's charger, whatever it speaks."""

    station_id: int
    command: object


@dataclass(frozen=True)
class ToClients:
    """Broadcast to the station's subscribers and to every estacionId=all subscriber."""

    station_id: int
    message: pushes.Message


@dataclass(frozen=True)
class Reply:
    """A Refusal to the connection whose message caused this effect (a charger or a
    dashboard), encoded as that connection speaks."""

    command: Refusal


@dataclass(frozen=True)
class CreateSession:
    station_id: int
    user_id: int
    user_name: str
    card_uid: str
    started_at: float
    tariff: float
    energy_state: dict[str, Any]
    offline_local_id: int | None = None  # the charger's id of a session it started offline
    end: bool = False  # that offline start's card is no longer enabled: the charger ends it


@dataclass(frozen=True)
class QueueReading:
    session_id: int
    ts: float  # the reading's place on the session's server-bounded timeline
    v: float
    a: float
    w: float
    wh: float | None
    kwh: float
    charger_ts: float | None = None  # the ts the charger claimed
    received_at: float | None = None  # server receive time
    flag: str | None = None  # why it was not billed as claimed (server/energy.py flags)


@dataclass(frozen=True)
class QueueProgress:
    """The session's running totals. `energy_state` is the session's LIVE account (not a
    copy): Storage encodes it once per batch, when the batch is taken, which is exactly the
    state after the readings in that batch (every change of the account queues a reading and
    a progress row together; the final changes at a stop are written by `EndSession`)."""

    session_id: int
    kwh: float
    cost: float
    energy_state: EnergyAccount
    station_id: int | None = None  # whose ownership epoch fences the write (a fleet)


@dataclass(frozen=True)
class EndSession:
    session_id: int
    ended_at: float
    kwh: float
    cost: float
    reason: str
    energy_state: dict[str, Any]
    station_id: int | None = None  # whose ownership epoch fences the write (a fleet)


@dataclass(frozen=True)
class AddAlert:
    station_id: int
    session_id: int | None
    kind: str
    created_at: float
    detail: str = ""


@dataclass(frozen=True)
class SetEmergencyLatch:
    """Persist the station's emergency latch: the time it was set, or None when cleared."""

    station_id: int
    latched_at: float | None


@dataclass(frozen=True)
class UpdateStation:
    """Take a station's new name, tariff and max power into the core (an administrator added or
    changed it); `announce` pushes its status to dashboards (a new station)."""

    station_id: int
    name: str
    tariff: float
    max_power_w: float | None = None
    announce: bool = False


Effect = (
    ToCharger
    | ToClients
    | Reply
    | CreateSession
    | QueueReading
    | QueueProgress
    | EndSession
    | AddAlert
    | SetEmergencyLatch
    | UpdateStation
)
FinalReport = (
    ChargerStop | EmergencyReport | StatusReport
)  # the messages that carry a final register


class SessionSource(Protocol):
    """What a session is made from: a CreateSession effect or a stored SessionRecord."""

    @property
    def user_name(self) -> str: ...
    @property
    def card_uid(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def tariff(self) -> float: ...
    @property
    def energy_state(self) -> dict[str, Any] | None: ...


class StoredSession(SessionSource, Protocol):
    """A session the storage kept open when the server stopped (server/storage: SessionRecord)."""

    @property
    def id(self) -> int: ...
    @property
    def station_id(self) -> int: ...


# --- state ------------------------------------------------------------------------------------
@dataclass
class OpenSession:
    id: int
    station_id: int
    user_name: str
    card_uid: str
    started_at: float
    tariff: float
    energy: EnergyAccount = field(default_factory=EnergyAccount)
    last_v: float | None = None
    last_a: float | None = None
    last_w: float | None = None
    # False from the `start` until the charger names the session (or a new connection): an
    # idle `status` meanwhile may have crossed the `start` on the wire (see _status_report)
    confirmed: bool = True

    @property
    def cost(self) -> float:
        return cost_of(self.energy.kwh, self.tariff)

    @classmethod
    def of(cls, session_id: int, station_id: int, source: SessionSource) -> OpenSession:
        """From a CreateSession effect or a stored SessionRecord (same field names)."""
        return cls(
            id=session_id,
            station_id=station_id,
            user_name=source.user_name,
            card_uid=source.card_uid,
            started_at=source.started_at,
            tariff=source.tariff,
            energy=EnergyAccount.from_dict(source.energy_state),
        )


@dataclass
class StationState:
    id: int
    name: str = ""
    tariff: float = 0.0
    max_power_w: float = DEFAULT_MAX_POWER_W  # the plausibility limit of its energy readings
    publisher_connected: bool = False
    emergency: bool = False  # latched: persisted (SetEmergencyLatch), cleared by a local reset
    starting: bool = False
    session: OpenSession | None = None
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_SESSIONS))  # closed ids
    taps: TapGuard = field(default_factory=TapGuard)
    replacements: ReplacementBurst = field(default_factory=ReplacementBurst)
    # server time of the charger's last sign of life on its current connection (its start, then
    # each event), and that of its previous connection when it was lost: an interrupted stop
    # after a reboot is bounded by it (None: no connection lost since this process had it)
    heard_at: float | None = None
    silent_since: float | None = None
    # no event handled yet on the current connection: its first `status` reports what happened
    # while the link was down (an `idle` one's register is bounded like an interrupted stop's)
    fresh_link: bool = False

    def owns(self, session_id: int) -> bool:
        """The station's open session or one of its recently closed ones."""
        return (
            self.session is not None and self.session.id == session_id
        ) or session_id in self.recent

    @property
    def status(self) -> str:
        if not self.publisher_connected:
            return v.DESCONECTADO
        if self.emergency:
            return v.EMERGENCIA
        if self.session is not None:
            return v.CARGANDO
        return v.DISPONIBLE


Handler = TypeVar("Handler", bound=Callable[..., list[Effect]])


def on(message_type: type) -> Callable[[Handler], Handler]:
    """Mark a SessionCore method as the handler of one inbound message type."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, "handles", message_type)  # noqa: B010 - a function attribute, not a field
        return handler

    return mark


class SessionCore:
    """Every station's session state and the rules that change it."""

    def __init__(
        self, tap_debounce: float = TAP_DEBOUNCE_S, card_stop_min_age: float = CARD_STOP_MIN_AGE_S
    ):
        self.tap_debounce = tap_debounce
        self.card_stop_min_age = card_stop_min_age
        self.stations: dict[int, StationState] = {}
        self._routes: dict[type, Callable[[StationState, Any, float], list[Effect]]] = {
            handler.handles: getattr(self, name)
            for name, handler in vars(type(self)).items()
            if hasattr(handler, "handles")
        }

    # --- loading ------------------------------------------------------------------------------
    def add_station(
        self, station_id: int, name: str, tariff: float, max_power_w: float | None = None
    ) -> StationState:
        station = self.stations.get(station_id)
        if station is None:
            station = self.stations[station_id] = StationState(station_id)
        station.name, station.tariff = name, tariff
        if max_power_w is not None:
            station.max_power_w = max_power_w
        return station

    def load_open_session(self, record: StoredSession) -> None:
        """Take back a session that was open when the server stopped (a SessionRecord)."""
        station = self.stations.get(record.station_id) or self.add_station(
            record.station_id, "", 0.0
        )
        station.session = OpenSession.of(record.id, record.station_id, record)
        station.silent_since = _last_arrival(station.session)

    def load_recent_sessions(self, station_id: int, session_ids: Iterable[int]) -> None:
        """The station's closed sessions, oldest first, as stored when the server stopped."""
        station = self.stations.get(station_id) or self.add_station(station_id, "", 0.0)
        station.recent.extend(session_ids)

    def load_emergency_latch(self, station_id: int) -> None:
        """The station was latched (stations.emergency_latched_at) when the server stopped."""
        station = self.stations.get(station_id) or self.add_station(station_id, "", 0.0)
        station.emergency = True

    def reload_station(
        self,
        station_id: int,
        open_session: StoredSession | None,
        recent: Iterable[int],
        latched: bool,
    ) -> None:
        """Take a station's state as the database has it (a fleet: another server process served
        its charger meanwhile): its open session (a SessionRecord or None), its recently closed
        session ids, its emergency latch."""
        station = self.stations.get(station_id) or self.add_station(station_id, "", 0.0)
        station.session = (
            None
            if open_session is None
            else OpenSession.of(open_session.id, station_id, open_session)
        )
        station.recent.clear()
        station.recent.extend(recent)
        station.emergency = latched
        station.starting = False
        station.heard_at = None  # another process heard the charger meanwhile: what it stored
        station.silent_since = None if station.session is None else _last_arrival(station.session)

    def station_left(self, station_id: int) -> None:
        """Another server process serves this station's charger now: forget its live state
        quietly (no push: the charger is online there)."""
        station = self.stations.get(station_id)
        if station is not None:
            station.publisher_connected = False
            station.session = None
            station.starting = False
            station.heard_at = station.silent_since = None

    # --- entry points -------------------------------------------------------------------------
    def publisher_connected(self, station_id: int, now: float) -> list[Effect]:
        return self._tracking_status(station_id, lambda st: self._set_connected(st, True, now))

    def publisher_gone(self, station_id: int, now: float) -> list[Effect]:
        return self._tracking_status(station_id, lambda st: self._set_connected(st, False, now))

    def publisher_replaced(
        self, station_id: int, now: float, old_peer: str, new_peer: str
    ) -> list[Effect]:
        """A newer publisher connection replaced the station's previous one (4008 to it).
        More than ReplacementBurst.limit of these within its window raises one alert per burst:
        two chargers are probably configured with the same station."""
        station = self.stations.get(station_id) or self.add_station(station_id, "", 0.0)
        if station.session is not None:
            station.session.confirmed = True  # a new connection's status is no older than the start
        station.silent_since = now if station.heard_at is None else station.heard_at
        station.heard_at = now  # the old connection is lost (dead, maybe), the new one starts
        station.fresh_link = True
        if not station.replacements.note(now):
            return []
        detail = (
            f"Cargador duplicado: la conexión de la estación {station_id} fue reemplazada "
            f"{station.replacements.count} veces en un minuto; ¿dos cargadores configurados con "
            f"la misma estación? (últimas conexiones: {old_peer} y {new_peer})"
        )
        return [
            ToClients(station_id, pushes.alert(station_id, None, DUPLICATE_CHARGER, detail, now)),
            AddAlert(station_id, None, DUPLICATE_CHARGER, now, detail),
        ]

    def update_station(self, update: UpdateStation) -> list[Effect]:
        """An administrator added or changed a station (open sessions keep their tariff)."""
        station = self.add_station(
            update.station_id, update.name, update.tariff, update.max_power_w
        )
        return (
            [ToClients(station.id, pushes.status(station.id, station.status))]
            if update.announce
            else []
        )

    def handle_publisher(self, station_id: int, message: object, now: float) -> list[Effect]:
        """A neutral event from a charger (server/vocabulary.py; CardPresented for a card)."""
        handler = self._routes[type(message)]

        def handle(st: StationState) -> list[Effect]:
            effects = handler(st, message, now)
            st.heard_at = now  # (after: an interrupted stop is bounded by the earlier ones)
            st.fresh_link = False
            return effects

        return self._tracking_status(station_id, handle)

    def session_created(self, create: CreateSession, session_id: int) -> list[Effect]:
        def opened(st: StationState) -> list[Effect]:
            st.starting = False
            st.session = OpenSession.of(session_id, st.id, create)
            st.session.confirmed = False
            offline = create.offline_local_id is not None
            started = pushes.session_started(session_id, st.id, create.user_name, create.started_at)
            return [
                ToCharger(
                    st.id,
                    StartCharging(
                        session_id, create.user_name, create.offline_local_id, create.end
                    ),
                ),
                ToClients(st.id, {**started, "offline": True} if offline else started),
            ]

        return self._tracking_status(create.station_id, opened)

    def session_create_failed(self, create: CreateSession) -> list[Effect]:
        def failed(st: StationState) -> list[Effect]:
            st.starting = False
            st.taps.forget()  # the server failed, not the person: a tap to retry counts
            return [ToCharger(st.id, Refusal("No se pudo crear la sesión", v.SERVER_ERROR))]

        return self._tracking_status(create.station_id, failed)

    def session_orphaned(self, create: CreateSession, session_id: int, now: float) -> list[Effect]:
        """The database stored `create` after the handling that asked for it was cancelled
        (server/effects.py): nobody was told. A charger's offline start is charging already
        and will report it again: the session is adopted as if created. A tap's `start` never
        went out (the relay stayed open): the session ends at once as START_INTERRUPTED,
        nothing billed, and the station takes the next tap."""
        if create.offline_local_id is not None:
            return self.session_created(create, session_id)

        def ended(st: StationState) -> list[Effect]:
            st.starting = False
            st.taps.forget()  # the server failed, not the person: a tap to retry counts
            if st.session is None:  # ended as the station's session (a reload may have taken it)
                st.session = OpenSession.of(session_id, st.id, create)
            if st.session.id == session_id:
                return self._end(st, START_INTERRUPTED, now)
            # rare: another session is open meanwhile; it stays, the orphan ends beside it
            st.recent.append(session_id)  # a stray report naming it is harmless
            return [
                EndSession(
                    session_id, now, 0.0, 0.0, START_INTERRUPTED, create.energy_state, st.id
                ),
                ToClients(
                    st.id,
                    pushes.session_ended(
                        session_id,
                        st.id,
                        0.0,
                        0.0,
                        max(0.0, now - create.started_at),
                        START_INTERRUPTED,
                    ),
                ),
            ]

        return self._tracking_status(create.station_id, ended)

    def dashboard_stop(
        self, station_id: int | None, message: RemoteStop, now: float
    ) -> list[Effect]:
        """A dashboard asks to stop a session (station from its subscription or the message)."""
        station_id = station_id or message.charger_id or self._station_of(message.session_id)
        station = self.stations.get(station_id) if station_id else None
        if station is None:
            return [Reply(Refusal("Sesión o cargador desconocido", v.NO_ACTIVE_SESSION))]
        return self._tracking_status(station.id, lambda st: self._dashboard_stop(st, message, now))

    # --- views --------------------------------------------------------------------------------
    def describe(self, station_id: int, now: float) -> dict[str, Any]:
        """The `charger` object of `init`: {"id","status","session"} as the seed shows."""
        st = self.stations[station_id]
        return {"id": st.id, "status": st.status, "session": self._session_view(st.session, now)}

    def describe_all(self, now: float) -> list[dict[str, Any]]:
        return [
            {**self.describe(sid, now), "name": self.stations[sid].name}
            for sid in sorted(self.stations)
        ]

    def open_session_count(self) -> int:
        return sum(1 for st in self.stations.values() if st.session is not None)

    def connected_count(self) -> int:
        return sum(1 for st in self.stations.values() if st.publisher_connected)

    # --- handlers, one per charger message type -----------------------------------------------
    @on(CardPresented)
    def _card_tap(self, st: StationState, tap: CardPresented, now: float) -> list[Effect]:
        if st.taps.repeated(tap.uid, now, self.tap_debounce):
            if st.taps.ignored == 1:  # logged once per burst
                log.info(
                    "station %s: card %s tapped again within %g s; ignoring the repeats",
                    st.id,
                    tap.uid,
                    self.tap_debounce,
                )
            return []
        if st.emergency:
            return self._reject_tap(st, tap, "Cargador en emergencia", v.STATION_FAULT, now)
        if st.session is not None and st.session.card_uid == tap.uid:
            if now - st.session.started_at < self.card_stop_min_age:
                message = (
                    f"Sesión iniciada hace menos de {self.card_stop_min_age:g} s: "
                    "vuelva a pasar la tarjeta más tarde para detenerla"
                )
                return self._reject_tap(st, tap, message, v.SESSION_TOO_RECENT, now)
            st.taps.accepted(tap.uid, now)
            return self._end(st, CARD_STOP, now, tell_charger=True)
        if tap.card is None:
            return self._reject_tap(st, tap, "Tarjeta desconocida", v.CARD_UNKNOWN, now)
        if not tap.card.enabled:
            return self._reject_tap(st, tap, "Tarjeta deshabilitada", v.CARD_DISABLED, now)
        if st.session is not None or st.starting:
            return self._reject_tap(st, tap, "Cargador ocupado", v.STATION_BUSY, now)
        st.starting = True
        st.taps.accepted(tap.uid, now)
        return [
            CreateSession(
                station_id=st.id,
                user_id=tap.card.user_id,
                user_name=tap.card.user_name,
                card_uid=tap.uid,
                started_at=now,
                tariff=st.tariff if tap.tariff is None else tap.tariff,
                energy_state=EnergyAccount().to_dict(),
            )
        ]

    @on(OfflineStartPresented)
    def _offline_start(
        self, st: StationState, start: OfflineStartPresented, now: float
    ) -> list[Effect]:
        """The charger started a listed card while offline (docs/protocol.md, "Offline cards").
        Accepted when the card was in the list of that version signed for this station with
        offline starts on and no other session is open: the session begins at the charger's
        `ts` bounded to [earliest, now]. A card disabled since is still accepted and billed;
        the charger is told to end the session (`end`). A repeated report (same local id: the
        answer was lost) gets the same session again, with `end` when that session is no longer
        the station's open one or its card is no longer enabled: the charger must not charge
        on it (unbilled, or on a disabled card)."""
        if start.existing is not None:
            still_open = st.session is not None and st.session.id == start.existing
            name = (
                st.session.user_name
                if st.session is not None and still_open
                else (start.card.user_name if start.card is not None else "")
            )
            end = not still_open or start.card is None or not start.card.enabled
            return [ToCharger(st.id, StartCharging(start.existing, name, start.local_id, end))]
        reason = None
        if not start.listed or start.card is None:
            reason = "Tarjeta no incluida en la lista firmada para carga sin conexión"
        elif st.session is not None or st.starting:
            reason = "Cargador con otra sesión abierta"
        if reason is not None or start.card is None:
            reason = reason or "Tarjeta desconocida"
            log.warning(
                "station %s: offline start %s of card %s refused: %s",
                st.id,
                start.local_id,
                start.uid,
                reason,
            )
            return [
                Reply(Refusal(reason, v.OFFLINE_START_REFUSED, start.local_id)),
                ToClients(
                    st.id,
                    pushes.error(
                        reason, v.OFFLINE_START_REFUSED, charger_id=st.id, nfc_uid=start.uid
                    ),
                ),
            ]
        earliest = now if start.earliest is None else min(start.earliest, now)
        began = earliest if start.ts is None else min(max(start.ts, earliest), now)
        st.starting = True
        energy = EnergyAccount()
        return [
            CreateSession(
                station_id=st.id,
                user_id=start.card.user_id,
                user_name=start.card.user_name,
                card_uid=start.uid,
                started_at=began,
                tariff=st.tariff if start.tariff is None else start.tariff,
                energy_state=energy.to_dict(),
                offline_local_id=start.local_id,
                end=not start.card.enabled,
            )
        ]

    @on(MeterSample)
    def _metrics(self, st: StationState, m: MeterSample, now: float) -> list[Effect]:
        session = st.session
        if session is None or session.id != m.session_id:
            if m.session_id in st.recent:
                # a reading of this station's own closed session, replayed because the ack of
                # its commit was lost: already stored and billed (an error would flash the
                # charger's error LED, or end a card tap it is waiting on)
                return []
            return [Reply(self._mismatch(st, m.session_id))]
        session.confirmed = True
        counted = session.energy.add(
            m.ts, m.w, m.wh, now=now, started_at=session.started_at, max_w=st.max_power_w
        )
        if counted is None:
            return []  # duplicate or older reading: already counted
        session.last_v, session.last_a, session.last_w = m.v, m.a, m.w
        kwh, cost = session.energy.kwh, session.cost
        effects: list[Effect] = [
            QueueReading(
                session.id,
                counted.ts,
                m.v,
                m.a,
                m.w,
                m.wh,
                kwh,
                charger_ts=m.ts,
                received_at=now,
                flag=counted.flag,
            ),
            QueueProgress(session.id, kwh, cost, session.energy, st.id),
            ToClients(
                st.id,
                pushes.metrics(
                    session.id, st.id, m.v, m.a, m.w, kwh, cost, now - session.started_at
                ),
            ),
        ]
        return effects + self._energy_anomaly(st, session, now)

    @on(ChargerStop)
    def _charger_stop(self, st: StationState, stop: ChargerStop, now: float) -> list[Effect]:
        session = st.session
        if session is None or (stop.session_id is not None and stop.session_id != session.id):
            if stop.session_id is not None and not st.owns(stop.session_id):
                return [Reply(self._mismatch(st, stop.session_id))]  # another station's or none
            return []  # already closed: a repeated stop is harmless (and alerts nothing twice)
        if stop.reason in v.INTERRUPTED:  # reported after a reboot: its readings came first
            until = self._last_sign_of_life(st, session)
            final = self._final_reading(st, session, stop, now, until=until)
            return final + self._end(st, stop.reason, now)
        effects: list[Effect] = self._final_reading(st, session, stop, now)
        if stop.reason is not None:
            detail = STOP_ALERTS[stop.reason]
            effects += [
                ToClients(st.id, pushes.alert(st.id, session.id, stop.reason, detail, now)),
                AddAlert(st.id, session.id, stop.reason, now, detail),
            ]
        return effects + self._end(st, LOCAL_STOP, now)

    @on(EmergencyReport)
    def _emergency(self, st: StationState, message: EmergencyReport, now: float) -> list[Effect]:
        """Honoured for the station that sent it whatever session it names (its relay is
        already open), attributed to the station's own open session or to none."""
        named, session = message.session_id, st.session
        effects: list[Effect] = []
        if named is not None and not st.owns(named):
            effects.append(Reply(self._mismatch(st, named)))
        if st.emergency and session is None:
            # the fault is already latched and alerted: a replay (the charger resends an
            # `emergency` whose delivery it could not confirm before its link dropped)
            return effects
        open_id = session.id if session is not None else None
        effects += [
            ToClients(st.id, pushes.emergency(st.id, open_id, now)),
            AddAlert(st.id, open_id, EMERGENCY, now, "emergency button"),
            *self._latch(st, now),
        ]
        if session is not None:
            # the final reading counts only if the message names this session (or none): a
            # reading labelled with another session is not billed to this one
            if named is None or named == session.id:
                effects += self._final_reading(st, session, message, now)
            effects += self._end(st, EMERGENCY, now)
        return effects

    @on(StatusReport)
    def _status_report(self, st: StationState, report: StatusReport, now: float) -> list[Effect]:
        """Reconciliation: the charger is the physical truth."""
        session = st.session
        effects: list[Effect] = []
        if report.session_id is not None and not st.owns(report.session_id):
            # told, and the physical state below still counts for this station only
            effects.append(Reply(self._mismatch(st, report.session_id)))
        if report.state == "fault":
            if not st.emergency:  # one alert per fault, however often the charger repeats it
                effects.append(
                    AddAlert(st.id, session.id if session else None, FAULT, now, "charger fault")
                )
            effects += self._latch(st, now)
            return effects + (self._end(st, FAULT, now) if session else [])
        effects += self._unlatch(st)  # idle or charging: the charger was reset on site
        if report.state == "idle":
            if session is None:
                return effects
            if (
                report.session_id is None
                and not session.confirmed
                and now - session.started_at < START_CROSSING_S
            ):
                # the answer to a sync_request sent before the `start` (a dashboard subscribed
                # during the tap) says idle, truthfully at the time: not a reset. Ask again;
                # the answer to that one comes after the `start` and is the truth
                session.confirmed = True
                return effects + [ToCharger(st.id, RequestStatus())]
            if report.session_id in (None, session.id):  # a register labelled with another
                # session is not billed to this one. The first report on a new connection
                # (the charger came back after losing the link, reset, its relay open since
                # boot) is bounded by its last sign of life before the loss, as an interrupted
                # stop is: its register must not be judged against the outage
                until = self._last_sign_of_life(st, session) if st.fresh_link else None
                effects += self._final_reading(st, session, report, now, until=until)
            return effects + self._end(st, CHARGER_RESET, now)
        # charging report.session_id
        if session is not None and session.id == report.session_id:
            session.confirmed = True
            return effects  # resume: the energy account continues from its state
        if report.session_id is not None:  # always for `charging` (the codecs refuse one without)
            effects.append(ToCharger(st.id, StopCharging(report.session_id)))  # open this relay
        if session is not None:
            effects += self._end(st, CHARGER_RESET, now)
        return effects

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _final_reading(
        st: StationState,
        session: OpenSession,
        message: FinalReport,
        now: float,
        until: float | None = None,
    ) -> list[Effect]:
        """Count the meter register a stop, emergency or idle status carries (a status has no
        `ts`: its receive time stands for it); the relay is already open (0 W, 0 A). `until`:
        the latest server time it can stand for (an interrupted stop). When it counts, it is
        stored as the session's last reading row (written with the session's end, in one
        transaction), so the bill's last interval is in the readings table like every other.
        An energy anomaly it reveals is alerted by `_end`."""
        ts = getattr(message, "ts", None)
        if message.wh is None and ts is None:
            return []
        counted = session.energy.add_final(
            ts,
            message.wh,
            now=now,
            started_at=session.started_at,
            max_w=st.max_power_w,
            until=until,
        )
        if counted is None:
            return []
        session.last_a = session.last_w = 0.0
        return [
            QueueReading(
                session.id,
                counted.ts,
                session.last_v if session.last_v is not None else 0.0,
                0.0,
                0.0,
                message.wh,
                session.energy.kwh,
                charger_ts=ts,
                received_at=now,
                flag=counted.flag,
            )
        ]

    @staticmethod
    def _last_sign_of_life(st: StationState, session: OpenSession) -> float:
        """The latest server time an interrupted session's final register can stand for: the
        charger's last sign of life before its connection was lost (never before the session's
        start) plus one metrics interval. The outage after it is not the session's: the board
        was off, and its relay is open from boot."""
        lost = session.started_at if st.silent_since is None else st.silent_since
        return max(lost, session.started_at) + METRICS_INTERVAL_S

    @staticmethod
    def _energy_anomaly(st: StationState, session: OpenSession, now: float) -> list[Effect]:
        """The session's one `energy_anomaly` alert, the first time one of its readings is an
        energy anomaly (an impossible register jump, a meter reset, power above the limit)."""
        energy = session.energy
        if not energy.anomalies or energy.anomaly_alerted:
            return []
        energy.anomaly_alerted = True
        detail = (
            f"Anomalía de energía: lectura imposible para la potencia máxima de la "
            f"estación ({energy.max_w / 1000:g} kW); se facturó el intervalo acotado"
        )
        if energy.final_flag is not None and AFTER_LINK_LOSS in energy.final_flag.split(","):
            detail = (
                f"Anomalía de energía: el registro final tras el reinicio del cargador supera lo "
                f"posible hasta la pérdida de conexión (potencia máxima {energy.max_w / 1000:g} "
                f"kW); se facturó el intervalo acotado"
            )
        return [
            ToClients(st.id, pushes.alert(st.id, session.id, ENERGY_ANOMALY, detail, now)),
            AddAlert(st.id, session.id, ENERGY_ANOMALY, now, detail),
        ]

    def _dashboard_stop(self, st: StationState, message: RemoteStop, now: float) -> list[Effect]:
        if not st.publisher_connected:
            return [Reply(Refusal("ESP32 no conectado", v.CHARGER_OFFLINE))]
        if st.session is None:
            return [Reply(Refusal("No hay sesión activa en este cargador", v.NO_ACTIVE_SESSION))]
        if message.session_id is not None and message.session_id != st.session.id:
            return [Reply(self._mismatch(st, message.session_id))]
        return self._end(st, REMOTE_STOP, now, tell_charger=True)

    def _end(
        self, st: StationState, reason: str, now: float, tell_charger: bool = False
    ) -> list[Effect]:
        session, st.session = st.session, None
        assert session is not None, "_end is only called for a station's open session"
        st.recent.append(session.id)
        if reason != CARD_STOP:  # ended by something else than a tap: the next tap is new
            st.taps.forget()
        kwh, cost = session.energy.kwh, session.cost
        duration = max(0.0, now - session.started_at)
        effects = self._energy_anomaly(st, session, now)  # a final reading's, before the end
        effects += [ToCharger(st.id, StopCharging(session.id))] if tell_charger else []
        return effects + [
            EndSession(session.id, now, kwh, cost, reason, session.energy.to_dict(), st.id),
            ToClients(st.id, pushes.session_ended(session.id, st.id, kwh, cost, duration, reason)),
        ]

    def _reject_tap(
        self, st: StationState, tap: CardPresented, message: str, code: str, now: float
    ) -> list[Effect]:
        """Answer the charger; push to dashboards at most once per debounce window, with how
        many refused taps were held back since the previous push."""
        effects: list[Effect] = [Reply(Refusal(message, code))]
        held = st.taps.refusal_push(now, self.tap_debounce)
        if held is not None:
            extra = {"repeats": held} if held else {}
            effects.append(
                ToClients(
                    st.id, pushes.error(message, code, charger_id=st.id, nfc_uid=tap.uid, **extra)
                )
            )
        return effects

    @staticmethod
    def _latch(st: StationState, now: float) -> list[Effect]:
        if st.emergency:
            return []
        st.emergency = True
        return [SetEmergencyLatch(st.id, now)]

    @staticmethod
    def _unlatch(st: StationState) -> list[Effect]:
        if not st.emergency:
            return []
        st.emergency = False
        return [SetEmergencyLatch(st.id, None)]

    @staticmethod
    def _mismatch(st: StationState, session_id: int) -> Refusal:
        return Refusal(
            f"La sesión {session_id} no está abierta en el cargador {st.id}", v.SESSION_MISMATCH
        )

    def _station_of(self, session_id: int | None) -> int | None:
        for st in self.stations.values():
            if st.session is not None and st.session.id == session_id:
                return st.id
        return None

    @staticmethod
    def _set_connected(st: StationState, connected: bool, now: float) -> list[Effect]:
        if connected:
            st.heard_at = now
            st.fresh_link = True
        else:  # lost: its last sign of life bounds a later interrupted stop
            st.silent_since = now if st.heard_at is None else st.heard_at
            st.heard_at = None
        st.publisher_connected = connected
        if st.session is not None:
            st.session.confirmed = True  # a new connection's status is no older than the start
        return []

    def _tracking_status(
        self, station_id: int, change: Callable[[StationState], list[Effect]]
    ) -> list[Effect]:
        station = self.stations.get(station_id) or self.add_station(station_id, "", 0.0)
        before = station.status
        effects = change(station)
        if station.status != before:
            effects.append(ToClients(station.id, pushes.status(station.id, station.status)))
        return effects

    @staticmethod
    def _session_view(session: OpenSession | None, now: float) -> dict[str, Any] | None:
        if session is None:
            return None
        return {
            "session_id": session.id,
            "user_name": session.user_name,
            "timestamp": pushes.iso_z(session.started_at),
            "kwh": round(session.energy.kwh, 3),
            "cost": round(session.cost, 2),
            "time": int(max(0.0, now - session.started_at)),
            "v": session.last_v,
            "a": session.last_a,
            "w": session.last_w,
        }


def _last_arrival(session: OpenSession) -> float:
    """A reloaded session's last sign of life as stored: its last reading's arrival, or its start."""
    arrival = session.energy.last_arrival
    return session.started_at if arrival is None else arrival

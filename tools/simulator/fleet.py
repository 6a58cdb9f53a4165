"""Several simulated chargers in one process, and the execution of commands on them.

`Fleet.build()` wires, per station: a `ChargingModel` on the shared clock, a `Charger`, its
`EventLog` and its `StationLink`. `execute()` runs one parsed `Command`, on one station or on
all of them. Scripts and interactive mode share it; `wait-for` keeps one cursor per station so
an event that happened before the wait started still counts exactly once.
"""

import asyncio
import functools
import random
from dataclasses import dataclass
from urllib.parse import urlencode

from tools.simulator.charger import Charger
from tools.simulator.commands import Command
from tools.simulator.commands import __doc__ as COMMANDS_HELP
from tools.simulator.curve import ChargingModel
from tools.simulator.events import EventLog, format_fields
from tools.simulator.link import StationLink

FLUSH_TIMEOUT_S = 10.0  # quit: time for the outbox to be sent and acknowledged


class ScriptFailure(Exception):
    """A `wait-for` timed out."""


class Quit(Exception):
    """The `quit` command."""


@dataclass(frozen=True)
class Settings:
    """Everything `cli` validated, as the fleet needs it."""

    url: str
    token: str | None
    stations: tuple
    cards: dict  # station -> card UID or None
    amps: float
    volts: float
    battery_kwh: float
    soc: float  # 0..1
    interval: float
    drop_seconds: float
    auto_tap: bool
    seed: int | None = None


def publisher_url(base: str, station_id: int, token: str | None) -> str:
    query = {"role": "publisher", "estacionId": station_id}
    if token:
        query["token"] = token
    return f"{base}?{urlencode(query)}"


@dataclass
class Station:
    id: int
    charger: Charger
    link: StationLink
    log: EventLog
    card: str | None
    cursor: int = 0


class Fleet:
    def __init__(self, stations: dict, write):
        self.stations = stations
        self._write = write

    @classmethod
    def build(cls, settings: Settings, clock, write, on_refused=None) -> "Fleet":
        """`on_refused(station_id, code, reason)`: the server refused that station (see
        link.REFUSALS); its link has stopped."""
        rng = random.Random(settings.seed)
        stations = {}
        for station_id in settings.stations:
            log = EventLog(station_id, write)
            model = ChargingModel(
                clock,
                amps=settings.amps,
                volts=settings.volts,
                battery_kwh=settings.battery_kwh,
                soc=settings.soc,
                rng=random.Random(rng.random()),
            )
            charger = Charger(
                station_id, model, metrics_interval_s=settings.interval, notify=log.emit
            )
            card = settings.cards.get(station_id)
            link = StationLink(
                charger,
                publisher_url(settings.url, station_id, settings.token),
                log,
                random.Random(rng.random()),
                drop_seconds=settings.drop_seconds,
                tick_s=min(0.25, settings.interval / 4),
                on_online=_auto_tap(charger, card) if settings.auto_tap else None,
                on_refused=None
                if on_refused is None
                else functools.partial(on_refused, station_id),
            )
            stations[station_id] = Station(station_id, charger, link, log, card)
        return cls(stations, write)

    def start(self) -> None:
        for station in self.stations.values():
            station.link.start()

    async def close(self) -> None:
        links = [s.link for s in self.stations.values()]
        await asyncio.gather(*(link.flush(FLUSH_TIMEOUT_S) for link in links))
        await asyncio.gather(*(link.close() for link in links))

    def _targets(self, command: Command) -> list:
        if command.station is None:
            return list(self.stations.values())
        return [self.stations[command.station]]

    async def execute(self, command: Command) -> None:
        """Run one command. Raises Quit or ScriptFailure."""
        handler = getattr(self, "_do_" + command.name.replace("-", "_"))
        await handler(command)

    # --- one handler per command -------------------------------------------------------------
    async def _do_tap(self, command):
        for station in self._targets(command):
            uid = command.uid or station.card
            if uid is None:
                station.log.emit("ignored", {"reason": "no card: use tap UID or --card"})
                continue
            station.charger.tap(uid)
            station.link.wake()

    async def _do_stop(self, command):
        self._each(command, lambda station: self._press(station, Charger.press_stop))

    async def _do_emergency(self, command):
        self._each(command, lambda station: self._press(station, Charger.press_emergency))

    async def _do_reset(self, command):
        self._each(command, lambda station: self._press(station, Charger.press_reset))

    async def _do_drop(self, command):
        self._each(command, lambda station: station.link.drop())

    async def _do_reconnect(self, command):
        self._each(command, lambda station: station.link.reconnect())

    async def _do_reboot(self, command):
        self._each(command, lambda station: station.link.reboot())

    def _each(self, command, act):
        for station in self._targets(command):
            act(station)

    @staticmethod
    def _press(station, button):
        button(station.charger)
        station.link.wake()

    async def _do_load(self, command):
        for station in self._targets(command):
            station.charger.model.set_current_limit(command.amps)
            station.log.emit("load", {"amps": command.amps})

    async def _do_status(self, command):
        for station in self._targets(command):
            self._write(f"[st{station.id}] status {format_fields(station.charger.summary())}")

    async def _do_wait(self, command):
        await asyncio.sleep(command.seconds)

    async def _do_wait_for(self, command):
        for station in self._targets(command):
            try:
                station.cursor = await station.log.wait_for(
                    command.event, station.cursor, command.seconds
                )
            except TimeoutError:
                raise ScriptFailure(
                    f"wait-for {command.event}: station {station.id} saw no "
                    f"'{command.event}' within {command.seconds:g} s"
                ) from None

    async def _do_help(self, command):
        self._write(COMMANDS_HELP.strip())

    async def _do_quit(self, command):
        raise Quit()


def _auto_tap(charger, card):
    """Tap the station's card once, right after its first connect."""
    if card is None:
        return None
    pending = [card]

    def tap_once():
        if pending:
            charger.tap(pending.pop())

    return tap_once

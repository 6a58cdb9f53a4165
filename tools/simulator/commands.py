"""The command language shared by interactive mode and scripts: parsing only, no I/O.

One command per line; blank lines and `#` comments are skipped. A command without a station
applies to every simulated station. A station is written `3` or `st3`; in `tap`, a lone
argument that names a simulated station is the station, anything else is a card UID.

  tap [UID] [STATION]      tap a card (default: the station's --card / --card-pattern card;
                           the same card again within 3 s is ignored, as on the board)
  stop [STATION]           press STOP (relay off, then `stop` with the final wh/ts)
  emergency [STATION]      press EMERGENCY (relay off, fault, `emergency`; latched until reset)
  reset [STATION]          the local reset gesture (EMERGENCY released, STOP held), at once:
                           leave fault, report `status` idle
  drop [STATION]           lose the WiFi for --drop-seconds (or until `reconnect`)
  reconnect [STATION]      end a drop or a backoff wait now
  reboot [STATION]         reboot the ESP32 (session forgotten, meter register kept)
  load AMPS [STATION]      change the current limit the car charges with
  status [STATION]         print each station's state
  wait SECONDS             pause the script
  wait-for EVENT [STATION] [timeout=SECONDS]
                           wait until EVENT (an event line name, see events.py) happens
                           after the previous wait-for; fails the script after the timeout
                           (default 30 s)
  help                     this text
  quit                     send what is pending, disconnect, exit
"""

import math
from dataclasses import dataclass

DEFAULT_WAIT_FOR_TIMEOUT_S = 30.0
MAX_WAIT_S = 86400.0
MAX_AMPS = 80.0

STATION_COMMANDS = ("stop", "emergency", "reset", "drop", "reconnect", "reboot", "status")
ALL_COMMANDS = STATION_COMMANDS + ("tap", "load", "wait", "wait-for", "help", "quit")


class CommandError(ValueError):
    """A line that is not a valid command; the message says why."""


@dataclass(frozen=True)
class Command:
    name: str
    station: int | None = None  # None: every station
    uid: str | None = None
    amps: float | None = None
    seconds: float | None = None
    event: str | None = None


def _station(token: str, stations) -> int | None:
    """The station a token names, or None if it is not a station token."""
    digits = token[2:] if token.lower().startswith("st") else token
    if not digits.isdigit():
        return None
    number = int(digits)
    return number if number in stations else None


def _require_station(token: str, stations) -> int:
    station = _station(token, stations)
    if station is None:
        raise CommandError(f"{token!r} is not a simulated station")
    return station


def _number(token: str, what: str, low: float, high: float) -> float:
    try:
        value = float(token)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {token!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise CommandError(f"{what} must be between {low:g} and {high:g}")
    return value


def _too_many(name: str, args) -> None:
    if args:
        raise CommandError(f"{name}: unexpected {' '.join(args)!r}")


def parse_command(line: str, stations) -> Command | None:
    """Parse one line; None for a blank line or a comment. Raises CommandError."""
    words = line.split("#", 1)[0].split()
    if not words:
        return None
    name, args = words[0].lower(), words[1:]
    if name not in ALL_COMMANDS:
        raise CommandError(f"unknown command {name!r} (try: help)")
    if name in STATION_COMMANDS:
        station = _require_station(args[0], stations) if args else None
        _too_many(name, args[1:])
        return Command(name, station=station)
    if name == "tap":
        return _parse_tap(args, stations)
    if name == "load":
        if not args:
            raise CommandError("load needs AMPS, e.g. load 16")
        amps = _number(args[0], "AMPS", 0.0, MAX_AMPS)
        station = _require_station(args[1], stations) if len(args) > 1 else None
        _too_many(name, args[2:])
        return Command(name, station=station, amps=amps)
    if name == "wait":
        if len(args) != 1:
            raise CommandError("wait needs SECONDS, e.g. wait 2")
        return Command(name, seconds=_number(args[0], "SECONDS", 0.0, MAX_WAIT_S))
    if name == "wait-for":
        return _parse_wait_for(args, stations)
    _too_many(name, args)
    return Command(name)


def _parse_tap(args, stations) -> Command:
    if len(args) > 2:
        raise CommandError("tap takes at most a UID and a station")
    if len(args) == 2:
        return Command("tap", uid=args[0], station=_require_station(args[1], stations))
    if len(args) == 1:
        station = _station(args[0], stations)
        if station is not None:
            return Command("tap", station=station)
        return Command("tap", uid=args[0])
    return Command("tap")


def _parse_wait_for(args, stations) -> Command:
    if not args:
        raise CommandError("wait-for needs an EVENT, e.g. wait-for started")
    event, station, seconds = args[0], None, DEFAULT_WAIT_FOR_TIMEOUT_S
    for token in args[1:]:
        if token.lower().startswith("timeout="):
            seconds = _number(token.split("=", 1)[1], "timeout", 0.0, MAX_WAIT_S)
        elif station is None:
            station = _require_station(token, stations)
        else:
            raise CommandError(f"wait-for: unexpected {token!r}")
    return Command("wait-for", station=station, event=event, seconds=seconds)


def parse_script(text: str, stations) -> list:
    """Parse a whole script up front: [(line_number, Command)]. Raises CommandError naming
    the line."""
    commands = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            command = parse_command(line, stations)
        except CommandError as exc:
            raise CommandError(f"line {number}: {exc}") from None
        if command is not None:
            commands.append((number, command))
    return commands

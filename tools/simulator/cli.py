"""Command line of the simulated charger: arguments, validation and the three modes.

  interactive  (stdin is a TTY, or --interactive): commands typed on stdin
  scripted     (--script FILE, or --script - for stdin): the commands of a file, then exit;
               exit status 1 when a `wait-for` times out
  headless     (otherwise): run until SIGINT/SIGTERM

Every bad argument ends the program with one line on stderr and exit status 2, never a
traceback. A station the server refuses (close 4001/4003/4004/4005: wrong key, unknown
station) ends it with one line on stderr and exit status 3. `quit`, the end of a script,
Ctrl-C (SIGINT) and SIGTERM end it with status 0 (1 for a failed `wait-for`). Examples:
  python -m tools.simulator --station 1 --card VIRTUAL-1-A4F2E8
  python -m tools.simulator --stations 1-20 --card-pattern VIRTUAL-{n}-A4F2E8 --speed 30
  python -m tools.simulator --script demo.txt --interval 0.5 --speed 10
"""

import argparse
import asyncio
import math
import signal
import sys
import threading
from urllib.parse import urlsplit

from tools.simulator.clock import ScaledClock
from tools.simulator.commands import CommandError, parse_command, parse_script
from tools.simulator.fleet import Fleet, Quit, ScriptFailure, Settings
from tools.simulator.link import REFUSALS

PROG = "python -m tools.simulator"
MAX_STATIONS = 500
MAX_STATION_ID = 2**31 - 1
EXIT_USAGE = 2
EXIT_SCRIPT_FAILED = 1
EXIT_REFUSED = 3


class UsageError(Exception):
    """An invalid argument; the message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# --- argument types (each raises ArgumentTypeError with a clear message) ------------------------
def _bounded(low, high, *, low_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            bound = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high:g}, not {text}")
        return value

    return parse


def parse_stations(text: str) -> tuple:
    """`1-20`, `1,3,5-7` -> sorted unique station ids."""
    ids = set()
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise argparse.ArgumentTypeError(
                f"bad station list {text!r}: use ids and ranges like 1-20 or 1,3,5-7"
            )
        first, last = int(low), int(high) if sep else int(low)
        if first < 1 or last > MAX_STATION_ID:
            raise argparse.ArgumentTypeError(f"station ids must be between 1 and {MAX_STATION_ID}")
        if first > last:
            raise argparse.ArgumentTypeError(f"bad range {part!r}: {first} is after {last}")
        if last - first + 1 + len(ids) > MAX_STATIONS:
            raise argparse.ArgumentTypeError(f"at most {MAX_STATIONS} stations per process")
        ids.update(range(first, last + 1))
    return tuple(sorted(ids))


def parse_station(text: str) -> tuple:
    if not text.isdigit() or not 1 <= int(text) <= MAX_STATION_ID:
        raise argparse.ArgumentTypeError(f"--station must be a positive integer, not {text!r}")
    return (int(text),)


def parse_url(text: str) -> str:
    """A ws:// or wss:// base URL without a query; an empty path means /ws."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --url {text!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"bad --url {text!r}: expected ws://HOST:PORT/ws (or wss://)"
        )
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"bad --url {text!r}: no query string; role, estacionId and token are added"
        )
    return text if parts.path else text + "/ws"


def parse_card(text: str) -> str:
    if not text or len(text) > 64 or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("a card UID is 1-64 characters without spaces")
    return text


def parse_card_pattern(text: str) -> str:
    if "{n}" not in text:
        raise argparse.ArgumentTypeError("--card-pattern must contain {n}, e.g. VIRTUAL-{n}-A4F2E8")
    try:
        parse_card(text.format(n=1))
    except (KeyError, IndexError, ValueError):
        raise argparse.ArgumentTypeError("--card-pattern may only use {n}") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A simulated ESP32 charger (WebSocket publisher).",
        epilog="Commands (interactive and scripts): tap, stop, emergency, reset, "
        "drop, reconnect, reboot, load, status, wait, wait-for, quit. "
        "Type 'help' for details.",
    )
    parser.add_argument(
        "--url",
        type=parse_url,
        default="ws://localhost:3000/ws",
        help="server WebSocket endpoint (default ws://localhost:3000/ws)",
    )
    parser.add_argument(
        "--token",
        help="credential sent as the token query parameter: the station key "
        "(make run prints the demo one) or a JWT bound to the station(s)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--station", type=parse_station, help="one station id (default 1)")
    where.add_argument("--stations", type=parse_stations, help="ids and ranges: 1-20, 1,3,5-7")
    cards = parser.add_mutually_exclusive_group()
    cards.add_argument("--card", type=parse_card, help="the card UID of a single station")
    cards.add_argument(
        "--card-pattern",
        type=parse_card_pattern,
        help="one card per station, {n} = station id: VIRTUAL-{n}-A4F2E8",
    )
    parser.add_argument(
        "--amps",
        type=_bounded(0, 80, low_open=True),
        default=32.0,
        help="constant-current limit in A (default 32)",
    )
    parser.add_argument(
        "--volts", type=_bounded(90, 260), default=230.0, help="nominal mains voltage (default 230)"
    )
    parser.add_argument(
        "--battery-kwh",
        type=_bounded(1, 300),
        default=60.0,
        help="battery capacity in kWh (default 60)",
    )
    parser.add_argument(
        "--soc",
        type=_bounded(0, 99),
        default=20.0,
        help="state of charge at plug-in, %% (default 20)",
    )
    parser.add_argument(
        "--interval",
        type=_bounded(0, 3600, low_open=True),
        default=3.0,
        help="seconds between metrics (default 3)",
    )
    parser.add_argument(
        "--speed",
        type=_bounded(0, 10000, low_open=True),
        default=1.0,
        help="simulated seconds per wall second (default 1)",
    )
    parser.add_argument(
        "--drop-seconds",
        type=_bounded(0, 86400),
        default=10.0,
        help="how long `drop` keeps the link down (default 10)",
    )
    parser.add_argument("--seed", type=int, help="random seed (noise, jitter) for repeatable runs")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--interactive", action="store_true", help="read commands from stdin")
    mode.add_argument("--script", metavar="FILE", help="run the commands in FILE ('-' = stdin)")
    return parser


def settings_from(args) -> Settings:
    stations = args.stations or args.station or (1,)
    if args.card and len(stations) > 1:
        raise UsageError("--card names one card; give each station one with --card-pattern")
    if args.interval * args.speed < 1.0:
        raise UsageError(
            "--interval x --speed must be at least 1 simulated second "
            "(ts is whole seconds; repeated ts are ignored by the server)"
        )
    if args.card_pattern:
        cards = {n: args.card_pattern.format(n=n) for n in stations}
    else:
        cards = {n: args.card for n in stations}
    return Settings(
        url=args.url,
        token=args.token,
        stations=stations,
        cards=cards,
        amps=args.amps,
        volts=args.volts,
        battery_kwh=args.battery_kwh,
        soc=args.soc / 100.0,
        interval=args.interval,
        drop_seconds=args.drop_seconds,
        auto_tap=not args.script,
        seed=args.seed,
    )


def _read_script(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --script {path}: {exc}") from None


def _write(line: str) -> None:
    print(line, flush=True)


# --- the modes -----------------------------------------------------------------------------------
async def _run_script(fleet: Fleet, commands) -> int:
    for number, command in commands:
        try:
            await fleet.execute(command)
        except ScriptFailure as exc:
            print(f"script: line {number}: {exc}", file=sys.stderr, flush=True)
            return EXIT_SCRIPT_FAILED
        except Quit:
            break
    return 0


def _stdin_lines(loop) -> asyncio.Queue:
    """Lines of stdin from a daemon thread (None at end of input): never blocks the loop and
    never holds up the exit."""
    queue = asyncio.Queue()

    def pump():
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def _run_interactive(fleet: Fleet, stations) -> int:
    lines = _stdin_lines(asyncio.get_running_loop())
    _write("simulator: type 'help' for commands, 'quit' to exit")
    while (line := await lines.get()) is not None:
        try:
            command = parse_command(line, stations)
            if command is not None:
                await fleet.execute(command)
        except (CommandError, ScriptFailure) as exc:
            _write(f"error: {exc}")
        except Quit:
            break
    return 0


async def _run_until_signal() -> int:
    await asyncio.Event().wait()
    return 0


async def _main(settings: Settings, clock_speed: float, mode: str, script) -> int:
    loop = asyncio.get_running_loop()
    refused = loop.create_future()

    def on_refused(station_id, code, reason):
        if not refused.done():
            refused.set_result((station_id, code, reason))

    fleet = Fleet.build(settings, ScaledClock(clock_speed), _write, on_refused=on_refused)
    fleet.start()
    runner = {
        "script": lambda: _run_script(fleet, script),
        "interactive": lambda: _run_interactive(fleet, settings.stations),
        "headless": _run_until_signal,
    }[mode]
    task = asyncio.ensure_future(runner())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await asyncio.wait({task, refused}, return_when=asyncio.FIRST_COMPLETED)
        if refused.done():
            task.cancel()
            station_id, code, reason = refused.result()
            print(
                f"{PROG}: error: the server refused station {station_id} (close {code}"
                f"{': ' + reason if reason else ''}): {REFUSALS[code]}",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_REFUSED
        return task.result()
    except asyncio.CancelledError:  # SIGINT, SIGTERM
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await fleet.close()


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from(args)
        script = None
        if args.script:
            script = parse_script(_read_script(args.script), settings.stations)
    except (UsageError, CommandError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.script:
        mode = "script"
    elif args.interactive or sys.stdin.isatty():
        mode = "interactive"
    else:
        mode = "headless"
    try:
        return asyncio.run(_main(settings, args.speed, mode, script))
    except KeyboardInterrupt:
        return 0

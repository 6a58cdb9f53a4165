"""Command-line errors: one clear line on stderr, exit status 2, no traceback, no connection."""

import subprocess
import sys

import pytest

from tools.simulator.cli import parse_stations, parse_url
from tools.simulator.fleet import publisher_url


def run(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "tools.simulator", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--stations", "5-1"], "5 is after 1"),
        (["--stations", "1-x"], "bad station list"),
        (["--stations", "0"], "between 1 and"),
        (["--station", "abc"], "positive integer"),
        (["--interval", "-1"], "--interval: must be more than 0"),
        (["--interval", "inf"], "--interval"),
        (["--speed", "0"], "--speed"),
        (["--amps", "500"], "--amps"),
        (["--url", "http://localhost:3000/ws"], "expected ws://HOST:PORT/ws"),
        (["--url", "ws://:3000/ws"], "expected ws://HOST:PORT/ws"),
        (["--url", "ws://localhost:99999/ws"], "Port out of range"),
        (["--url", "ws://localhost:3000/ws?role=client"], "no query string"),
        (["--stations", "1-3", "--card", "X"], "--card-pattern"),
        (["--card-pattern", "VIRTUAL-A4F2E8"], "must contain {n}"),
        (["--interval", "0.1"], "--interval x --speed"),
        (["--script", "/nonexistent/demo.txt"], "cannot read --script"),
        (["--station", "1", "--stations", "1-2"], "not allowed with"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_invalid_arguments_give_one_line_and_exit_2(args, words):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and words in lines[0]
        and lines[0].startswith("python -m tools.simulator: error:")
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_bad_script_line_is_reported_before_connecting():
    result = run("--script", "-", stdin="wait-for connected\ntap\nexplode\n")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "python -m tools.simulator: error: line 3: unknown command 'explode' (try: help)"
    )
    assert result.stdout == ""


def test_station_lists_and_ranges():
    assert parse_stations("1-3") == (1, 2, 3)
    assert parse_stations("1,3,5-7") == (1, 3, 5, 6, 7)
    assert parse_stations("2,2,1-2") == (1, 2)


def test_the_url_gets_the_seed_query_parameters():
    assert parse_url("ws://10.0.0.5:3000") == "ws://10.0.0.5:3000/ws"
    assert publisher_url("ws://h:3000/ws", 7, None) == "ws://h:3000/ws?role=publisher&estacionId=7"
    assert (
        publisher_url("wss://h/ws", 1, "a.b.c")
        == "wss://h/ws?role=publisher&estacionId=1&token=a.b.c"
    )

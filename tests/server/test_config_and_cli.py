"""`python -m server`: configuration sources, one-line errors, banner, graceful SIGTERM."""

import asyncio
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from server.config import ConfigError, load_config
from tests.live_server import receive_json, send_json

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_documentation(tmp_path):
    config = load_config([], environ={}, dotenv_path=None)
    assert (config.host, config.port, config.default_tariff, config.log_level) == (
        "0.0.0.0",
        3000,
        7.0,
        "INFO",
    )
    assert config.db_path == Path("data/evse.sqlite3")
    assert (config.tap_debounce, config.card_stop_min_age) == (2.0, 5.0)


def test_tap_settings_are_read_in_seconds_and_zero_turns_them_off():
    config = load_config(
        [], environ={"TAP_DEBOUNCE": "0", "CARD_STOP_MIN_AGE": "12.5"}, dotenv_path=None
    )
    assert (config.tap_debounce, config.card_stop_min_age) == (0.0, 12.5)


def test_flags_override_environment_which_overrides_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "PORT=4000\nHOST=10.0.0.5\nDEFAULT_TARIFF=9.5\nDB_PATH=%s\n" % (tmp_path / "a.db")
    )
    config = load_config(
        ["--port", "5000"], environ={"PORT": "4500", "LOG_LEVEL": "debug"}, dotenv_path=dotenv
    )
    assert (config.port, config.host, config.default_tariff, config.log_level) == (
        5000,
        "10.0.0.5",
        9.5,
        "DEBUG",
    )
    assert config.db_path == tmp_path / "a.db"


@pytest.mark.parametrize(
    "argv, environ, expected",
    [
        (["--port", "abc"], {}, "PORT"),
        ([], {"PORT": "70000"}, "PORT"),
        (
            [],
            {"RATE_BURST": "³"},
            "RATE_BURST='³': must be an integer from 233 to",
        ),  # isdigit() but no int
        # issue 11: bounds on every number; RATE_BURST as documented (> a charger's replay, 232)
        ([], {"RATE_BURST": "5"}, "RATE_BURST='5': must be an integer from 233 to 100000"),
        (
            [],
            {"DEFAULT_TARIFF": "1e308"},
            "DEFAULT_TARIFF='1e308': must be a price per kWh from 0 to 10000",
        ),
        (
            [],
            {"PING_INTERVAL": "1e308"},
            "PING_INTERVAL='1e308': must be a finite number greater than 0 and at most 3600",
        ),
        ([], {"RATE_LIMIT": "inf"}, "RATE_LIMIT='inf': must be a finite number greater than 0"),
        (
            [],
            {"HANDSHAKE_TIMEOUT": "86400"},
            "HANDSHAKE_TIMEOUT='86400': must be a finite number greater than 0 and at most 600",
        ),
        ([], {"CURRENCY_DECIMALS": "5"}, "CURRENCY_DECIMALS='5': must be an integer from 0 to 4"),
        (
            [],
            {"CURRENCY_SYMBOL": "<b>"},
            "CURRENCY_SYMBOL='<b>': must be at most 8 printable characters",
        ),
        ([], {"DEFAULT_TARIFF": "-1"}, "DEFAULT_TARIFF"),
        ([], {"DEFAULT_TARIFF": "nan"}, "DEFAULT_TARIFF"),
        ([], {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ([], {"PING_TIMEOUT": "0"}, "PING_TIMEOUT"),
        ([], {"TAP_DEBOUNCE": "-1"}, "TAP_DEBOUNCE='-1': must be a number of seconds from 0 to 60"),
        ([], {"TAP_DEBOUNCE": "nan"}, "TAP_DEBOUNCE='nan': must be a number of seconds"),
        ([], {"TAP_DEBOUNCE": "two"}, "TAP_DEBOUNCE='two': must be a number of seconds"),
        (
            [],
            {"CARD_STOP_MIN_AGE": "inf"},
            "CARD_STOP_MIN_AGE='inf': must be a number of seconds from 0 to 3600",
        ),
        ([], {"CARD_STOP_MIN_AGE": "7200"}, "CARD_STOP_MIN_AGE"),
        (["--db", "/etc/passwd/evse.sqlite3"], {}, "not a directory"),
        (["--bogus"], {}, "invalid arguments"),
    ],
)
def test_invalid_configuration_is_refused_with_a_clear_message(argv, environ, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(argv, environ=environ, dotenv_path=None)


def run_server(tmp_path, *args, env=None):
    ours = (
        "HOST",
        "PORT",
        "DB_PATH",
        "DEFAULT_TARIFF",
        "LOG_LEVEL",
        "PING_INTERVAL",
        "PING_TIMEOUT",
    )
    environment = {k: v for k, v in os.environ.items() if k not in ours}
    environment.update(PYTHONPATH=str(REPO), **(env or {}))
    return asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=tmp_path,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize(
    "args, env",
    [
        (["--port", "abc"], {}),
        ([], {"DEFAULT_TARIFF": "-3"}),
        ([], {"LOG_LEVEL": "chatty"}),
        (["--db", "/etc/passwd/x.sqlite3"], {}),
    ],
)
async def test_bad_configuration_stops_the_start_with_one_line_and_no_traceback(
    tmp_path, args, env
):
    process = await run_server(tmp_path, *args, env=env)
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr.decode()


async def test_port_in_use_is_one_line_too(tmp_path, live_app):
    process = await run_server(
        tmp_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(live_app.port),
        "--db",
        str(tmp_path / "x.sqlite3"),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    [line] = stderr.decode().strip().splitlines()
    assert line.startswith("error: cannot start") and "in use" in line


async def test_demo_server_prints_urls_and_sigterm_flushes_readings_and_closes_with_1001(tmp_path):
    db = tmp_path / "evse.sqlite3"
    process = await run_server(
        tmp_path, "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--demo"
    )
    try:
        banner = []
        while not any("firmware:" in line for line in banner):
            banner.append((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
        text = "".join(banner)
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", text).group(1))
        # the venv's interpreter (a bare `python` may lack websockets), the server's real port
        python = (
            os.path.relpath(sys.executable, tmp_path)
            if Path(sys.executable).is_relative_to(tmp_path)
            else sys.executable
        )
        assert (
            f"  simulator:  {python} -m tools.simulator --station 1 --card VIRTUAL-1-A4F2E8 "
            f"--url ws://127.0.0.1:{port}/ws --token="
        ) in text
        # the demo key is not in the checkout's data/ (the database is in tmp_path): it is given
        key = (tmp_path / "station-1.key").read_text().strip()
        assert (
            f"make -C {REPO} sim-charger PORT={port} STATION=1 TOKEN={key} "
            "(then type: tap 04C0FFEE)"
        ) in text
        assert f'wscat -c "ws://127.0.0.1:{port}/ws?role=client&estacionId=1&token=' in text
        # the printed commands carry working credentials: the dashboard's and the demo key
        dashboard_url = re.search(r'wscat -c "(\S+role=client\S+)"', text).group(1)
        async with ws_connect(dashboard_url) as dashboard:
            assert (await receive_json(dashboard))["type"] == "subscribed"
        charger = await ws_connect(re.search(r'wscat -c "(\S+role=publisher\S+)"', text).group(1))
        assert (await receive_json(charger))["type"] == "connected"
        # a charger with its station key gets its signed offline card list next (issue 13)
        assert (await receive_json(charger))["type"] == "auth_list"
        async with charger:
            await send_json(charger, {"type": "nfc_scan", "nfc_uid": "VIRTUAL-1-A4F2E8"})
            session_id = (await receive_json(charger))["session_id"]
            for k in range(5):
                await send_json(
                    charger,
                    {
                        "type": "metrics",
                        "session_id": session_id,
                        "v": 230,
                        "a": 10,
                        "w": 2300,
                        "ts": 1_750_000_000 + 3 * k,
                    },
                )
            await send_json(charger, {"type": "ping?"})  # answered in order: readings are queued
            await receive_json(charger)
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(charger.wait_closed(), 30)
            assert charger.close_code == 1001
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    with sqlite3.connect(db) as database:
        assert (
            database.execute(
                "SELECT COUNT(*) FROM readings WHERE session_id=?", (session_id,)
            ).fetchone()[0]
            == 5
        )
        assert (
            database.execute("SELECT ended_at FROM sessions WHERE id=?", (session_id,)).fetchone()[
                0
            ]
            is None
        )


async def test_a_file_that_is_not_a_database_is_refused_with_one_line(tmp_path):
    bogus = tmp_path / "notes.sqlite3"
    bogus.write_text("this is not a database\n" * 100)
    process = await run_server(tmp_path, "--host", "127.0.0.1", "--port", "0", "--db", str(bogus))
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    [line] = stderr.decode().strip().splitlines()
    assert line.startswith("error: database") and str(bogus) in line
    assert bogus.read_text().startswith("this is not a database")  # left as it was


@pytest.mark.parametrize(
    "line, words",
    [
        ("PORT 3100", "line 2: cannot read 'PORT 3100': expected NAME=value"),
        ("PORT", "line 2: 'PORT' has no '=': expected NAME=value"),
        ('"PORT"=3100', "line 2: '\"PORT\"' is not a variable name"),
    ],
)
def test_a_malformed_dotenv_line_is_refused_with_its_line_number(tmp_path, line, words):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# the server's settings\n{line}\nHOST=127.0.0.1\n")
    with pytest.raises(ConfigError) as problem:
        load_config([], environ={}, dotenv_path=dotenv)
    assert str(problem.value) == f"{dotenv} {words}"


async def test_a_malformed_dotenv_line_stops_the_start_instead_of_using_port_3000(tmp_path):
    """The issue's case: `PORT 3100` (no `=`) was a python-dotenv warning, then a server on 3000."""
    (tmp_path / ".env").write_text("HOST=127.0.0.1\nPORT 3100\n")
    process = await run_server(tmp_path, "--db", str(tmp_path / "x.sqlite3"))
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:  # the old server: listening on 3000
            process.kill()
            await process.wait()
    assert process.returncode == 2 and stdout == b""
    assert stderr.decode() == "error: .env line 2: cannot read 'PORT 3100': expected NAME=value\n"


def test_currency_settings_default_to_dollars_with_two_decimals_and_may_be_empty():
    config = load_config([], environ={}, dotenv_path=None)
    assert (config.currency_symbol, config.currency_decimals) == ("$", 2)
    config = load_config(
        [], environ={"CURRENCY_SYMBOL": "", "CURRENCY_DECIMALS": "0"}, dotenv_path=None
    )
    assert (config.currency_symbol, config.currency_decimals) == ("", 0)
    config = load_config(
        [], environ={"CURRENCY_SYMBOL": "€", "CURRENCY_DECIMALS": "3"}, dotenv_path=None
    )
    assert (config.currency_symbol, config.currency_decimals) == ("€", 3)

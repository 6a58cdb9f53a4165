"""The real server on PostgreSQL (DATABASE_URL): a charger session end to end, its readings
stored and billed in the database, history totals from SQL; `python -m server --database-url`
starts, serves and flushes on SIGTERM; a bad or unreachable URL is one line, no traceback."""

import asyncio
import itertools
import os
import re
import signal

import asyncpg
import pytest
from websockets.asyncio.client import connect as ws_connect

from server.config import ConfigError, load_config
from tests.live_server import base_url, http_url, receive_json, running_server, send_json
from tests.server.test_config_and_cli import run_server
from tests.server.test_sessions import _seed_nfc_flow

_names = itertools.count()


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.create_database(f"server{os.getpid()}_{next(_names)}")


async def test_a_charger_session_on_postgres_is_stored_and_billed(tmp_path, database_url):
    now = [1_767_225_600.0]
    async with running_server(
        tmp_path / "evse.sqlite3", database_url=database_url, clock=lambda: now[0]
    ) as app:
        assert app.storage.backend == "postgres"
        await _seed_nfc_flow(app, base_url(app), now)  # 2.45 kWh at 7.0: 17.15, two readings
        await app.storage.flush()
        body = await asyncio.to_thread(_get_json, http_url(app, "/api/sessions"))
    assert body["totals"] == {"sessions": 1, "kwh": 2.45, "cost": 17.15, "duration": 2469}
    database = await asyncpg.connect(database_url)  # what another process sees
    try:
        assert await database.fetchval("SELECT count(*) FROM readings") == 2
        row = await database.fetchrow("SELECT kwh, cost, end_reason FROM sessions")
        assert (round(row["kwh"], 6), round(row["cost"], 6), row["end_reason"]) == (
            2.45,
            17.15,
            "local_stop",
        )
    finally:
        await database.close()


def _get_json(url):
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


async def test_python_m_server_on_postgres_serves_and_flushes_readings_on_sigterm(
    tmp_path, database_url
):
    process = await run_server(
        tmp_path, "--host", "127.0.0.1", "--port", "0", "--demo", "--database-url", database_url
    )
    try:
        banner = []
        while not any("firmware:" in line for line in banner):
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, (await process.stderr.read()).decode()
            banner.append(line)
        text = "".join(banner)
        assert f"(database {database_url})" in text
        charger = await ws_connect(re.search(r'wscat -c "(\S+role=publisher\S+)"', text).group(1))
        assert (await receive_json(charger))["type"] == "connected"
        # a charger with its station key gets its signed offline card list next (issue 13),
        # stored in PostgreSQL as version 1
        auth_list = await receive_json(charger)
        assert (auth_list["type"], auth_list["version"]) == ("auth_list", 1)
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
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    database = await asyncpg.connect(database_url)
    try:
        assert (
            await database.fetchval(
                "SELECT count(*) FROM readings WHERE session_id = $1", session_id
            )
            == 5
        )
        assert (
            await database.fetchval("SELECT ended_at FROM sessions WHERE id = $1", session_id)
            is None
        )  # still open
    finally:
        await database.close()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://evse@db/evse", "must be a postgresql://"),
        ("postgresql://evse@db", "must name the database"),
        ("postgres://evse@db:5432/", "must name the database"),
        ("postgresql://evse:secret@db:port/evse", "is not a URL"),
    ],
)
def test_a_bad_database_url_is_refused_with_a_clear_message_and_no_password(url, expected):
    with pytest.raises(ConfigError, match=expected) as refused:
        load_config([], environ={"DATABASE_URL": url}, dotenv_path=None)
    assert "secret" not in str(refused.value)


async def test_an_unreachable_postgres_stops_the_start_with_one_line(tmp_path):
    url = f"postgresql://evse:hunter2@/evse?host={tmp_path}"  # no server listens there
    process = await run_server(
        tmp_path, "--host", "127.0.0.1", "--port", "0", env={"DATABASE_URL": url}
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    [line] = stderr.decode().strip().splitlines()
    assert line.startswith(
        f"error: database postgresql://evse@/evse?host={tmp_path}: cannot connect to PostgreSQL"
    ), line
    assert "hunter2" not in line


def test_database_url_comes_from_env_dotenv_or_flag_and_db_on_the_command_line_means_sqlite(
    tmp_path,
):
    url = "postgresql://evse@db.example:5432/evse"
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DATABASE_URL={url}\n")
    assert load_config([], environ={}, dotenv_path=dotenv).storage_target == url
    assert load_config([], environ={"DATABASE_URL": ""}, dotenv_path=dotenv).storage_target == (
        load_config([], environ={}, dotenv_path=None).db_path
    )  # empty: SQLite
    flagged = load_config(
        ["--database-url", url + "2"], environ={"DATABASE_URL": url}, dotenv_path=None
    )
    assert flagged.storage_target == url + "2"
    sqlite = load_config(
        ["--db", str(tmp_path / "x.sqlite3")], environ={"DATABASE_URL": url}, dotenv_path=dotenv
    )
    assert sqlite.storage_target == tmp_path / "x.sqlite3"
    assert (
        load_config(
            [], environ={"DATABASE_URL": "postgresql://evse:pw@h/evse"}, dotenv_path=None
        ).storage_name
        == "postgresql://evse@h/evse"
    )

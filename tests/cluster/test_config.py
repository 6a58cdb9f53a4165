"""A fleet's configuration: NATS_URL, SERVER_ID, DATABASE_URL; bad values and an unreachable bus
stop the start with one line, never a traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from server.config import ConfigError, load_config
from tests.server.test_config_and_cli import REPO


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"NATS_URL": "nats://127.0.0.1:4222"}, "NATS_URL needs DATABASE_URL=postgresql://"),
        (
            {"NATS_URL": "http://127.0.0.1:4222", "DATABASE_URL": "postgresql://x@h/y"},
            "invalid NATS_URL=",
        ),
        ({"DATABASE_URL": "mysql://x@/y"}, "invalid DATABASE_URL"),
        ({"SERVER_ID": "a b"}, "invalid SERVER_ID="),
        ({"SERVER_ID": "x" * 65}, "invalid SERVER_ID="),
    ],
)
def test_a_fleet_setting_that_cannot_work_is_refused_with_a_clear_message(
    tmp_path, environ, expected
):
    with pytest.raises(ConfigError) as refused:
        load_config([], environ={"DB_PATH": str(tmp_path / "e.db"), **environ}, dotenv_path=None)
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)


def test_a_fleet_process_is_named_after_its_host_and_pid_unless_told():
    environ = {"NATS_URL": "nats://a:4222, nats://b:4222", "DATABASE_URL": "postgresql://x@h/y"}
    config = load_config([], environ=environ, dotenv_path=None)
    assert config.server_id == f"{socket.gethostname()}-{os.getpid()}"[:64]
    assert config.nats_url == "nats://a:4222,nats://b:4222"
    named = load_config([], environ={**environ, "SERVER_ID": "site-2.b"}, dotenv_path=None)
    assert named.server_id == "site-2.b"
    assert load_config([], environ={}, dotenv_path=None).nats_url is None  # SQLite, one process


async def run_server(tmp_path, environ):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--port",
        "0",
        cwd=REPO,
        env={**os.environ, "DB_PATH": str(tmp_path / "e.db"), **environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, err.decode()


async def test_nats_without_postgres_stops_the_start_with_one_line(tmp_path):
    code, err = await run_server(tmp_path, {"NATS_URL": "nats://127.0.0.1:4222"})
    assert (
        code == 2
        and err.startswith("error: NATS_URL needs DATABASE_URL")
        and "Traceback" not in err
    )


async def test_an_unreachable_bus_stops_the_start_with_one_line(tmp_path, postgres_server):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err = await run_server(
        tmp_path,
        {
            "NATS_URL": f"nats://127.0.0.1:{port}",
            "DATABASE_URL": postgres_server.create_database("lonely"),
            "SERVER_ID": "lonely",
        },
    )
    assert code == 1 and "Traceback" not in err
    assert (
        f"error: cannot join the fleet (lonely): cannot reach NATS at nats://127.0.0.1:{port}"
        in err
    )

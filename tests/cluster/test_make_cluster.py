"""`make cluster` (tools/cluster.py): a real fleet behind a real HAProxy.

The command as an operator runs it (2 processes): it prints the balancer's URL, the dashboard
token and the demo key; a charger and a dashboard connected through the balancer work as
against one server; Ctrl-C stops every process it started. Then the fleet as code: a process
SIGKILLed under its charger, the charger reconnects through the same balancer URL and lands
on the surviving process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.live_server import receive_json, receive_type
from tools.cluster import Cluster

pytestmark = pytest.mark.timeout(150)
REPO = Path(__file__).resolve().parents[2]
CARD = "VIRTUAL-1-A4F2E8"
WAIT_S = 45.0


async def read_banner(process) -> str:
    lines = []
    async with asyncio.timeout(WAIT_S * 2):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "make cluster exited: " + "".join(lines)
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                return "".join(lines)


def healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        return json.load(response)


async def charge_a_little(balancer: str, token: str, key: str) -> None:
    """A dashboard and a charger through the balancer: the dashboard sees the charger's session."""
    async with (
        ws_connect(f"{balancer}?role=client&estacionId=1&token={token}") as dashboard,
        ws_connect(f"{balancer}?role=publisher&estacionId=1&token={key}") as charger,
    ):
        assert (await receive_type(dashboard, "init", timeout=WAIT_S))["type"] == "init"
        assert (await receive_json(charger, timeout=WAIT_S))["type"] == "connected"
        await charger.send(
            json.dumps({"type": "status", "state": "idle", "session_id": None, "wh": 5000})
        )
        await charger.send(json.dumps({"type": "nfc_scan", "nfc_uid": CARD}))
        start = await receive_type(charger, "start", timeout=WAIT_S)
        await charger.send(
            json.dumps(
                {
                    "type": "metrics",
                    "session_id": start["session_id"],
                    "v": 230.0,
                    "a": 10.0,
                    "w": 2300.0,
                    "wh": 5001,
                    "ts": time.time(),
                }
            )
        )
        seen = await receive_type(dashboard, "metrics", timeout=WAIT_S)
        assert seen["session_id"] == start["session_id"]
        await charger.send(
            json.dumps(
                {"type": "stop", "session_id": start["session_id"], "wh": 5002, "ts": time.time()}
            )
        )
        ended = await receive_type(dashboard, "session_ended", timeout=WAIT_S)
        assert ended["session_id"] == start["session_id"]


async def test_make_cluster_serves_a_charger_and_a_dashboard_through_the_balancer_and_ctrl_c_stops_it_all():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cluster",
        "--processes",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        banner = await read_banner(process)
        balancer = re.search(r"balancer: +(ws://\S+)", banner).group(1)
        token = re.search(r"dashboard: +http://\S+\?token=(\S+)", banner).group(1)
        key = re.search(r"--token=(\S+)", banner).group(1)
        ports = [
            int(port) for port in re.findall(r"process s\d: ws://127\.0\.0\.1:(\d+)/ws", banner)
        ]
        pids = [int(pid) for pid in re.findall(r"pid (\d+)", banner)]
        workdir = Path(re.search(r"log (\S+)/s1\.log", banner).group(1))
        assert len(ports) == 2 and len(pids) == 2 and "DATABASE_URL=postgresql://" in banner
        assert all(healthz(port)["ok"] for port in ports)
        await charge_a_little(balancer, token, key)
        balancer_port = int(re.search(r":(\d+)/ws", balancer).group(1))
        assert healthz(balancer_port)["ok"]  # plain HTTP goes through the balancer too
    finally:
        os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: to the whole process group
        async with asyncio.timeout(WAIT_S):
            rest = (await process.stdout.read()).decode()
            code = await process.wait()
    assert code == 0, rest
    assert "cluster: stopped" in rest and "Traceback" not in rest
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert not workdir.exists()


async def test_a_bad_argument_is_one_line_and_exit_2():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cluster",
        "--processes",
        "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    assert process.returncode == 2
    assert (
        "argument --processes/-n: 0 is outside 1..16" in err.decode()
        and "Traceback" not in err.decode()
    )


async def connect_charger(url: str, key: str):
    """Connect through the balancer until a server says `connected` (HAProxy may still be
    sending the first try to the dead process: it redispatches, or the try is refused)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        try:
            charger = await ws_connect(
                f"{url}?role=publisher&estacionId=1&token={key}", open_timeout=10
            )
            if (await receive_json(charger, timeout=10))["type"] == "connected":
                return charger
            await charger.close()
        except (OSError, TimeoutError, Exception):  # noqa: BLE001 - refused, reset, closed: again
            if loop.time() > deadline:
                raise
        await asyncio.sleep(0.2)


async def test_a_killed_process_s_charger_reconnects_through_the_same_balancer_url_to_a_live_one(
    postgres_server, nats_server
):
    database_url = postgres_server.create_database("make_cluster")
    async with Cluster(database_url, nats_server.url, 2) as fleet:
        key = fleet.demo_key()
        charger = await connect_charger(fleet.balancer_url, key)
        ports = {member.name: member.port for member in fleet.members}
        holder = next(
            name for name, port in ports.items() if healthz(port)["chargers_connected"] == 1
        )
        index = [member.name for member in fleet.members].index(holder)
        await fleet.kill(index)
        with pytest.raises(Exception):  # noqa: B017 - the connection died with its process
            async with asyncio.timeout(WAIT_S):
                while True:
                    await charger.recv()
        charger = await connect_charger(fleet.balancer_url, key)
        try:
            survivor = next(name for name in ports if name != holder)
            assert healthz(ports[survivor])["chargers_connected"] == 1
            await fleet.wait_until_down(holder)
            assert (await fleet.server_states())[survivor] == "UP"
        finally:
            await charger.close()

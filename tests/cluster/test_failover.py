"""Failover of a real fleet: three `python -m server` processes, one PostgreSQL, one
nats-server. A charger charging on A; A is SIGKILLed mid-session; the charger reconnects to B
and replays what A never acknowledged; the session continues on B and is billed the meter's
delta, every reading sent stored once. A dashboard on C watches it all.

The charger is a real websockets client that does what the firmware's outbox does (keep every
frame until an `ack` covers it, send `status` then the unacknowledged frames after a
reconnect): a test-made charger keeps the kill at a known point of the stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from contextlib import AsyncExitStack

import asyncpg
import pytest
from websockets.asyncio.client import connect as ws_connect

from server.auth import ADMIN, STATION, load_or_create_secret, mint_token
from tests.live_server import receive_type
from tests.server.test_config_and_cli import REPO

pytestmark = pytest.mark.timeout(120)
CARD = "VIRTUAL-1-A4F2E8"
WAIT_S = 30.0
STEP_S = 0.2  # 1 Wh every 0.2 s: 18 kW, under the station's 22 kW plausibility bound


class Fleet:
    """The running processes, by name; each one's ws:// base URL."""

    def __init__(self, tmp_path, database_url: str, nats_url: str):
        self.tmp_path, self.database_url, self.nats_url = tmp_path, database_url, nats_url
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.urls: dict[str, str] = {}
        self.secret_file = tmp_path / "secret.key"

    async def start(self, name: str) -> str:
        (self.tmp_path / name).mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats_url,
            "SERVER_ID": name,
            "SECRET_FILE": str(self.secret_file),
            "LOG_LEVEL": "INFO",
            "DB_PATH": str(self.tmp_path / name / "unused.sqlite3"),
        }  # --db would mean SQLite
        with (self.tmp_path / f"{name}.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--demo",
                cwd=REPO,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self.processes[name] = process
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT_S)).decode()
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert port, (line, (self.tmp_path / f"{name}.log").read_text()[-3000:])
        self.urls[name] = f"ws://127.0.0.1:{port.group(1)}"
        return self.urls[name]

    def token(self, role: str) -> str:
        secret = load_or_create_secret(self.secret_file)
        return (
            mint_token(secret, "test-fleet", STATION, [1])
            if role == "publisher"
            else mint_token(secret, "test-admin", ADMIN)
        )

    def connect(self, name: str, role: str, station="1"):
        return ws_connect(
            f"{self.urls[name]}/ws?role={role}&estacionId={station}&token={self.token(role)}",
            compression=None,
            open_timeout=WAIT_S,
        )

    async def stop_all(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), WAIT_S)
            except TimeoutError:
                process.kill()
                await process.wait()


class OutboxCharger:
    """A charger that keeps each frame until an `ack` covers it and replays the rest."""

    def __init__(self):
        self.websocket = None
        self.frames: list[dict] = []  # this connection's frames, in order
        self.acked = 0  # frames of this connection the server committed
        self.unacked: list[dict] = []
        self.readings: list[dict] = []  # every reading ever sent (first sends only)
        self.wh = 1000

    async def attach(self, websocket) -> None:
        self.websocket, self.frames, self.acked = websocket, [], 0
        assert (await self.receive())["type"] == "connected"

    async def send(self, frame: dict) -> None:
        self.frames.append(frame)
        await self.websocket.send(json.dumps(frame))

    async def receive(self, timeout: float = WAIT_S) -> dict:
        """The next message that is not an ack (acks are counted)."""
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.websocket.recv())
                if message["type"] != "ack":
                    return message
                self.acked = max(self.acked, message["n"])

    async def reading(self, session_id: int) -> None:
        self.wh += 1
        frame = {
            "type": "metrics",
            "session_id": session_id,
            "v": 230.0,
            "a": 78.0,
            "w": 18000.0,
            "ts": time.time(),
            "wh": self.wh,
        }
        self.readings.append(frame)
        await self.send(frame)

    async def drain_acks(self) -> None:
        """Read whatever the server sent (acks) without waiting for more."""
        try:
            await self.receive(timeout=0.05)
        except TimeoutError:
            pass


async def test_a_sigkilled_process_s_charger_continues_its_session_on_another_and_bills_the_meter_delta(
    tmp_path, postgres_server, nats_server
):
    fleet = Fleet(tmp_path, postgres_server.create_database("killed"), nats_server.url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(fleet.stop_all)
        for name in "ABC":  # one after the other: the first creates the schema and the demo
            await fleet.start(name)
        watcher = await stack.enter_async_context(fleet.connect("C", "client"))
        await receive_type(watcher, "init")

        charger = OutboxCharger()
        await charger.attach(await stack.enter_async_context(fleet.connect("A", "publisher")))
        await charger.send({"type": "nfc_scan", "nfc_uid": CARD})
        start = await charger.receive()
        assert start["type"] == "start", start
        session_id = start["session_id"]
        for _ in range(8):
            await charger.reading(session_id)
            await asyncio.sleep(STEP_S)
            await charger.drain_acks()
        async with asyncio.timeout(WAIT_S):  # A committed some of them
            while charger.acked < 5:
                await charger.receive(timeout=WAIT_S)
        for _ in range(3):  # and these are in flight when A dies
            await charger.reading(session_id)
        fleet.processes["A"].send_signal(signal.SIGKILL)
        await fleet.processes["A"].wait()
        while True:  # the charger reads to the end of its connection (acks that made it)
            try:
                await charger.receive(timeout=WAIT_S)
            except Exception:  # noqa: BLE001 - the connection died with A
                break
        unacked = [f for f in charger.frames[charger.acked :] if f["type"] == "metrics"]

        # the charger reconnects, to B: status first, then what A never acknowledged
        await charger.attach(await stack.enter_async_context(fleet.connect("B", "publisher")))
        await charger.send(
            {"type": "status", "state": "charging", "session_id": session_id, "wh": charger.wh}
        )
        for frame in unacked:
            await charger.send(frame)
        for _ in range(6):
            await asyncio.sleep(STEP_S)
            await charger.reading(session_id)
        seen = await receive_type(watcher, "metrics", timeout=WAIT_S)  # C sees B's charger
        assert seen["session_id"] == session_id
        await asyncio.sleep(STEP_S)
        final_wh = charger.wh + 1
        await charger.send(
            {"type": "stop", "session_id": session_id, "wh": final_wh, "ts": time.time()}
        )
        ended = await receive_type(watcher, "session_ended", timeout=WAIT_S)

    database = await asyncpg.connect(fleet.database_url)
    try:
        stored = await database.fetch(
            "SELECT charger_ts, wh FROM readings WHERE session_id = $1 ORDER BY charger_ts",
            session_id,
        )
        session = await database.fetchrow(
            "SELECT kwh, end_reason, ended_at FROM sessions WHERE id = $1", session_id
        )
    finally:
        await database.close()
    sent = [(f["ts"], float(f["wh"])) for f in charger.readings]
    assert unacked, "the kill left no reading unacknowledged: the test proved nothing"
    assert [(r["charger_ts"], float(r["wh"])) for r in stored][: len(sent)] == sent  # each once
    first_wh = charger.readings[0]["wh"]
    assert round(session["kwh"] * 1000, 6) == final_wh - first_wh  # exactly the meter's delta
    assert session["end_reason"] == "local_stop" and session["ended_at"] is not None
    assert ended["session_id"] == session_id and round(ended["kwh"] * 1000) == final_wh - first_wh


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_the_simulated_charger_behind_a_proxy_keeps_its_session_when_its_process_is_killed(
    tmp_path, postgres_server, nats_server
):
    # the CPython simulator (the firmware's own state machine and outbox) reaches the fleet
    # through tools/faultproxy.py, as chargers reach it through a TCP balancer: SIGKILL of the
    # process behind it, the proxy retargets to another, the simulator reconnects by itself
    from tools.faultproxy import FaultProxy

    fleet = Fleet(tmp_path, postgres_server.create_database("proxied"), nats_server.url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(fleet.stop_all)
        for name in "ABC":
            await fleet.start(name)
        proxy = await stack.enter_async_context(FaultProxy(port_of(fleet.urls["A"])))
        watcher = await stack.enter_async_context(fleet.connect("C", "client"))
        await receive_type(watcher, "init")
        simulator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.simulator",
            "--url",
            f"{proxy.url}/ws",
            f"--token={fleet.token('publisher')}",
            "--station",
            "1",
            "--card",
            CARD,
            "--interval",
            "1",
            "--seed",
            "1",
            "--interactive",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

        async def kill_simulator():
            if simulator.returncode is None:
                simulator.kill()
                await simulator.wait()

        stack.push_async_callback(kill_simulator)

        def metrics_up(connection=None):
            def match(frame):
                message = frame.message()
                return (
                    frame.up
                    and message is not None
                    and message.get("type") == "metrics"
                    and (connection is None or frame.conn >= connection)
                )

            return match

        connected = await receive_type(watcher, "status", timeout=WAIT_S)  # on A, seen from C
        assert connected == {"type": "status", "charger_id": 1, "status": "disponible"}
        simulator.stdin.write(b"tap\n")
        session_id = (await receive_type(watcher, "session_started", timeout=WAIT_S))["session_id"]
        index = 0
        for _ in range(4):  # four readings through A
            index, _frame = await proxy.wait_frame(metrics_up(), start=index + 1 if index else 0)
        fleet.processes["A"].send_signal(signal.SIGKILL)
        await fleet.processes["A"].wait()
        proxy.retarget(port_of(fleet.urls["B"]))
        connection = proxy.connections + 1
        for _ in range(3):  # three readings through B
            index, _frame = await proxy.wait_frame(
                metrics_up(connection), start=index + 1, timeout=WAIT_S
            )
        seen = await receive_type(watcher, "metrics", timeout=WAIT_S)  # C sees it served by B
        assert seen["session_id"] == session_id
        simulator.stdin.write(b"stop\n")
        ended = await receive_type(watcher, "session_ended", timeout=WAIT_S)
        simulator.stdin.write(b"quit\n")
        await asyncio.wait_for(simulator.wait(), WAIT_S)

    database = await asyncpg.connect(fleet.database_url)
    try:
        stored = await database.fetch(
            "SELECT charger_ts, wh FROM readings WHERE session_id = $1 ORDER BY charger_ts",
            session_id,
        )
        session = await database.fetchrow(
            "SELECT kwh, end_reason FROM sessions WHERE id = $1", session_id
        )
    finally:
        await database.close()
    up = [frame.message() for frame in proxy.frames if frame.up and frame.message() is not None]
    sent = {
        (float(m["ts"]), float(m["wh"]))
        for m in up
        if m.get("type") == "metrics" and m.get("session_id") == session_id
    }
    [stop] = [m for m in up if m.get("type") == "stop" and m.get("session_id") == session_id]
    rows = [(r["charger_ts"], float(r["wh"])) for r in stored]
    assert len(rows) == len(set(rows))  # a replayed reading is stored once
    assert sent <= set(rows) and set(rows) - sent <= {(float(stop["ts"]), float(stop["wh"]))}
    first_wh = min(wh for _ts, wh in sent)
    assert round(session["kwh"] * 1000, 6) == stop["wh"] - first_wh  # exactly the meter's delta
    assert session["end_reason"] == "local_stop" and ended["session_id"] == session_id

"""The simulator (a real subprocess, scripted mode) delivers with acks: against a server that
acks for a while, then reads frames but commits (acks) nothing and dies, every reading no ack
covered is sent again on the next connection, right after the status. A pong is no proof: the old
simulator took the pong of its ping for delivery and never sent them again (the issue's lost
reading after a server SIGKILL)."""

import asyncio
import sys

import pytest

from tests.firmware.mpy import ROOT
from tests.tools.ackserver import AckServer

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
wait-for connected timeout=20
tap
wait-for started timeout=20
wait-for ->metrics
wait-for ->metrics
wait-for ->metrics
wait-for ->metrics
wait-for online timeout=30
wait-for ack timeout=20
"""


async def test_readings_no_ack_covered_are_sent_again_after_the_reconnect():
    async with AckServer() as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.simulator",
            "--url",
            server.url,
            "--script",
            "-",
            "--card",
            "VIRTUAL-1-A4F2E8",
            "--interval",
            "0.2",
            "--speed",
            "10",
            "--seed",
            "1",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        talk = asyncio.create_task(process.communicate(SCRIPT.encode()))
        try:
            await server.wait_for(lambda s: len(s.frames(kind="metrics")) >= 3)
            server.auto_ack = False  # from now on the server reads but commits nothing
            committed = len(server.frames())
            await server.wait_for(
                lambda s: s.frames()[committed:] and s.frames()[-1]["type"] == "metrics"
            )
            await server.round_trip()
            await server.round_trip()  # the charger's own pings were answered long since
            server.auto_ack = True  # the restarted server commits what it reads
            server.cut()  # the server dies: nothing of this connection was committed
            out, err = await asyncio.wait_for(talk, 90)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, (out.decode()[-3000:], err.decode())
        await server.wait_for(lambda s: not s.open)
    lost, after = server.connections[0][committed:], server.connections[1]
    unacked = [f for f in lost if f["type"] == "metrics"]
    assert after[0]["type"] == "status" and after[0]["state"] == "charging"
    assert (
        after[1 : 1 + len(unacked)] == unacked
    )  # the same frames, in order, right after the status

"""The simulator sends what the firmware sends: the same script played by the real firmware
(MicroPython unix port, emulated hardware, tools/sim_charger.py) and by the simulator (a real
subprocess, scripted mode), each against the same small acking server
(tests/tools/ackserver.py), gives the same frames on every connection.

Compared per connection: each frame's type and the fields the protocol decides by (a
status's state and session_id, the session_id of every reading, stop and emergency, a stop's
reason), with the field sets of each type, and a run of readings as one item (how many fit in
a drop depends on timing, not on the rules). The energy numbers differ (another meter) and
are checked for what both must hold: readings' `ts` never go backwards, the stop carries the
latest register.
"""

import asyncio
import json
import sys

import pytest

from tests.firmware.mpy import ROOT, requires_micropython
from tests.tools.ackserver import AckServer
from tools.sim_charger import SimCharger

pytestmark = pytest.mark.timeout(180)

FW_CARD = "04A1B2C3"
SIM_CARD = "VIRTUAL-1-A4F2E8"
RUN_TIMEOUT_S = 90.0

# connect, tap, readings, a WiFi drop, readings queued, STOP while offline, back: replay
STOP_OFFLINE = """
wait-for connected timeout=20
tap
wait-for started timeout=20
wait-for ->metrics
wait-for ->metrics
wait-for ->metrics
drop
wait-for queued
wait-for queued
wait-for queued
stop
wait-for stopped
reconnect
wait-for ->stop timeout=20
"""

# the same with EMERGENCY while offline, then (once the emergency is delivered) the reset
EMERGENCY_OFFLINE = """
wait-for connected timeout=20
tap
wait-for started timeout=20
wait-for ->metrics
wait-for ->metrics
wait-for ->metrics
drop
wait-for queued
wait-for queued
wait-for queued
emergency
wait-for fault
reconnect
wait-for ->emergency timeout=20
wait-for delivered timeout=20
reset
wait-for ->status
"""


def shape(frames):
    """A connection's frames as the protocol sees them: a run of readings is one item."""
    items = []
    for frame in frames:
        kind = frame["type"]
        if kind == "status":
            item = (kind, frame["state"], frame["session_id"])
        elif kind in ("metrics", "stop", "emergency"):
            item = (kind, frame["session_id"], frame.get("reason"))
        else:
            item = (kind,)
        if not (item[0] == "metrics" and items and items[-1] == item):
            items.append(item)
    return items


def fields(connections):
    """Each frame type with the set of its fields, over every connection."""
    return {
        (f["type"], tuple(sorted(f)))
        for frames in connections
        for f in frames
        if f["type"] != "nfc_scan"
    }


def check_energy(connections):
    """Readings' `ts` never go backwards; the stop (or emergency) carries the latest
    register, at least the last reading's."""
    readings = [f for frames in connections for f in frames if f["type"] == "metrics"]
    ts = [f["ts"] for f in readings]
    assert ts == sorted(ts)
    [end] = [f for frames in connections for f in frames if f["type"] in ("stop", "emergency")]
    assert end["wh"] >= readings[-1]["wh"] > readings[0]["wh"]


async def simulator_frames(script):
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
            SIM_CARD,
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
        try:
            out, err = await asyncio.wait_for(process.communicate(script.encode()), RUN_TIMEOUT_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, (out.decode()[-3000:], err.decode())
        await server.wait_for(lambda s: not s.open)  # every frame read
        return server.connections


async def firmware_frames(tmp_path, offline_press):
    """The firmware through the same story; `offline_press(fw, server)` is what happens
    while the WiFi is down, then the link comes back and `offline_press` returns what to
    do once the replay is delivered."""
    async with AckServer() as server:
        fw = SimCharger(tmp_path, server.url, metrics_interval_s=1, power=3600.0)
        await fw.start()
        try:
            await server.wait_for(lambda s: s.frames(kind="status"))
            await fw.command("tap " + FW_CARD)
            await server.wait_for(lambda s: len(s.frames(kind="metrics")) >= 3)
            await fw.command("remove")
            await fw.command("link down")  # the WiFi: the firmware drops the connection
            await server.wait_for(lambda s: not s.open)
            await fw.wait_status(lambda st: st["outbox"] >= 3)
            after_replay = await offline_press(fw)
            await fw.command("link up")
            await server.wait_for(lambda s: len(s.connections) == 2 and s.open)
            await fw.wait_status(lambda st: st["outbox"] == 0)  # everything acked
            await after_replay(fw, server)
        finally:
            await fw.stop()
        return server.connections


async def stop_offline(fw):
    await fw.command("press stop")
    await fw.wait_status(lambda st: st["state"] == "idle")
    await fw.command("release stop")

    async def after_replay(fw, server):
        await server.wait_for(lambda s: s.frames(kind="stop"))

    return after_replay


async def emergency_offline(fw):
    await fw.command("press emergency")
    await fw.wait_status(lambda st: st["state"] == "fault")

    async def after_replay(fw, server):  # the reset gesture: EMERGENCY back, STOP held 5 s
        await server.wait_for(lambda s: s.frames(kind="emergency"))
        await fw.command("release emergency")
        await fw.command("press stop")
        await fw.wait_status(lambda st: st["state"] == "idle")
        await fw.command("release stop")
        await server.wait_for(lambda s: len(s.frames(kind="status")) == 2)

    return after_replay


@requires_micropython
@pytest.mark.parametrize(
    "offline_press, script, expected",
    [
        (
            stop_offline,
            STOP_OFFLINE,
            [
                [("status", "idle", None), ("nfc_scan",), ("metrics", 7, None)],
                # the session as the server last knew it, then the replay and the stop; no second
                # status after the replay
                [("status", "charging", 7), ("metrics", 7, None), ("stop", 7, None)],
            ],
        ),
        (
            emergency_offline,
            EMERGENCY_OFFLINE,
            [
                [("status", "idle", None), ("nfc_scan",), ("metrics", 7, None)],
                # ... the emergency instead; the next status is the one the reset sends
                [
                    ("status", "charging", 7),
                    ("metrics", 7, None),
                    ("emergency", 7, None),
                    ("status", "idle", None),
                ],
            ],
        ),
    ],
    ids=["stop_offline", "emergency_offline"],
)
async def test_the_simulator_sends_the_firmware_frames(tmp_path, offline_press, script, expected):
    firmware = await firmware_frames(tmp_path, offline_press)
    simulator = await simulator_frames(script)
    assert [shape(c) for c in firmware] == expected, json.dumps(firmware)
    assert [shape(c) for c in simulator] == expected, json.dumps(simulator)
    assert fields(simulator) == fields(firmware)
    check_energy(firmware)
    check_energy(simulator)

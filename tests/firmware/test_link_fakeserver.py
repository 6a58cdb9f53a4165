"""tools/fakeserver.py: the bench-test server, alone and driving the real firmware link.

The fake server runs as a real subprocess (`python -m tools.fakeserver --port 0`); clients are
real `websockets` clients, and the last test puts the firmware's Link (on the MicroPython unix
port) against the fake server in scripted mode.
"""

import asyncio
import json
import re
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.firmware.mpy import ROOT, MpyProcess, requires_micropython
from tests.firmware.test_link import charger, config

pytestmark = pytest.mark.timeout(120)


def fakeserver(*args):
    cmd = [sys.executable, "-m", "tools.fakeserver", "--host", "127.0.0.1", "--port", "0",
           *args]
    return MpyProcess(None, cmd=cmd)


async def listening_port(proc):
    line = await proc.expect("listening on ws://")
    return int(re.search(r":(\d+)/ws", line).group(1))


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 20))


@pytest.mark.parametrize("args,error", [
    (["--port", "70000"], "argument --port: port must be 0..65535"),
    (["--station", "0"], "argument --station: must be a positive whole number"),
    (["--reject", "bad code!"], "argument --reject: an error code such as CARD_UNKNOWN"),
    (["--script", "/no/such/file"], "argument --script: can't open '/no/such/file'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_command_line_arguments_give_one_clear_line(args, error):
    proc = subprocess.run([sys.executable, "-m", "tools.fakeserver", *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fakeserver: error: " + error), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


async def test_publisher_gets_connected_start_and_the_commands_typed_on_stdin():
    async with fakeserver("--station", "1", "--session-id", "77", "--user-name", "Ana") as proc:
        port = await listening_port(proc)
        async with connect("ws://127.0.0.1:%d/ws?role=publisher&estacionId=1" % port) as ws:
            assert await recv_json(ws) == {"type": "connected", "role": "publisher",
                                           "estacionId": "1"}
            await ws.send('{"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}')
            assert await recv_json(ws) == {"type": "start", "session_id": 77,
                                           "user_name": "Ana"}
            await proc.expect('<- {"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}')
            proc.send("stop")
            assert await recv_json(ws) == {"type": "stop", "session_id": 77}
            proc.send("sync")
            assert await recv_json(ws) == {"type": "sync_request", "from": "server"}
            proc.send("error STATION_FAULT meter broken")
            assert await recv_json(ws) == {"type": "error", "message": "meter broken",
                                           "code": "STATION_FAULT"}
            proc.send("bogus")
            await proc.expect("error: unknown command 'bogus'")
            proc.send("send {not json")
            await proc.expect("error: send: not valid JSON")
            proc.send("close 4008 bye")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd.code == 4008


@pytest.mark.parametrize("query,code", [
    ("role=publisher&estacionId=2", 4005),
    ("role=publisher", 4004),
    ("estacionId=1", 4001),
    ("role=publisher&estacionId=1&token=wrong", 4003),
])
async def test_the_seed_close_codes_refuse_a_bad_publisher_url(query, code):
    async with fakeserver("--station", "1", "--token", "good") as proc:
        port = await listening_port(proc)
        async with connect("ws://127.0.0.1:%d/ws?%s" % (port, query)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
        assert closed.value.rcvd.code == code


async def test_another_path_is_404_and_reject_mode_answers_with_the_error_code():
    async with fakeserver("--reject", "CARD_UNKNOWN") as proc:
        port = await listening_port(proc)
        with pytest.raises(InvalidStatus) as refused:
            async with connect("ws://127.0.0.1:%d/other" % port):
                pass
        assert refused.value.response.status_code == 404
        async with connect("ws://127.0.0.1:%d/ws?role=publisher&estacionId=9" % port) as ws:
            await recv_json(ws)  # connected
            await ws.send('{"type":"nfc_scan","nfc_uid":"04A1B2C3"}')
            msg = await recv_json(ws)
    assert msg["type"] == "error" and msg["code"] == "CARD_UNKNOWN"


@requires_micropython
async def test_scripted_fakeserver_drives_the_real_firmware_link(tmp_path):
    script = tmp_path / "bench.txt"
    script.write_text("wait status\nwait nfc_scan\nsync\nwait status\nstop\nquit\n")
    async with fakeserver("--script", str(script), "--session-id", "500") as server:
        port = await listening_port(server)
        async with charger(config(port)) as fw:
            await fw.expect("LINK True")
            fw.send("send 04A1B2C3")
            start = await fw.expect(lambda line: line.startswith("MSG") and "start" in line)
            stop = await fw.expect(lambda line: line.startswith("MSG") and '"stop"' in line)
            code = await server.wait_exit(30)
    assert json.loads(start[4:]) == {"type": "start", "session_id": 500,
                                     "user_name": "Juan Pérez"}
    assert json.loads(stop[4:]) == {"type": "stop", "session_id": 500}
    assert code == 0
    received = [line for line in server.output().splitlines() if " <- " in line]
    assert [json.loads(line.split(" <- ", 1)[1])["type"] for line in received] == [
        "status", "nfc_scan", "status"]

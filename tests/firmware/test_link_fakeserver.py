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
from tests.firmware.test_link import charger, config, metrics_ts

pytestmark = pytest.mark.timeout(120)


def fakeserver(*args):
    cmd = [sys.executable, "-m", "tools.fakeserver", "--host", "127.0.0.1", "--port", "0", *args]
    return MpyProcess(None, cmd=cmd)


async def listening_port(proc):
    line = await proc.expect("listening on ws://")
    return int(re.search(r":(\d+)/ws", line).group(1))


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), 20))


@pytest.mark.parametrize(
    "args,error",
    [
        (["--port", "70000"], "argument --port: port must be 0..65535"),
        (["--station", "0"], "argument --station: must be a positive whole number"),
        (["--reject", "bad code!"], "argument --reject: an error code such as CARD_UNKNOWN"),
        (["--script", "/no/such/file"], "argument --script: can't open '/no/such/file'"),
        (["--ack-delay", "-1"], "argument --ack-delay: must be a number of seconds from 0 to 60"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_command_line_arguments_give_one_clear_line(args, error):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.fakeserver", *args],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("fakeserver: error: " + error), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


async def test_publisher_gets_connected_start_and_the_commands_typed_on_stdin():
    async with fakeserver("--station", "1", "--session-id", "77", "--user-name", "Ana") as proc:
        port = await listening_port(proc)
        async with connect("ws://127.0.0.1:%d/ws?role=publisher&estacionId=1" % port) as ws:
            assert await recv_json(ws) == {
                "type": "connected",
                "role": "publisher",
                "estacionId": "1",
            }
            await ws.send('{"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}')
            assert await recv_json(ws) == {"type": "start", "session_id": 77, "user_name": "Ana"}
            await proc.expect('<- {"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}')
            proc.send("stop")
            assert await recv_json(ws) == {"type": "stop", "session_id": 77}
            proc.send("sync")
            assert await recv_json(ws) == {"type": "sync_request", "from": "server"}
            proc.send("error STATION_FAULT meter broken")
            assert await recv_json(ws) == {
                "type": "error",
                "message": "meter broken",
                "code": "STATION_FAULT",
            }
            proc.send("bogus")
            await proc.expect("error: unknown command 'bogus'")
            proc.send("send {not json")
            await proc.expect("error: send: not valid JSON")
            proc.send("close 4008 bye")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd.code == 4008


@pytest.mark.parametrize(
    "query,code",
    [
        ("role=publisher&estacionId=2", 4005),
        ("role=publisher", 4004),
        ("estacionId=1", 4001),
        ("role=publisher&estacionId=1&token=wrong", 4003),
    ],
)
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
    assert json.loads(start[4:]) == {"type": "start", "session_id": 500, "user_name": "Juan Pérez"}
    assert json.loads(stop[4:]) == {"type": "stop", "session_id": 500}
    assert code == 0
    received = [line for line in server.output().splitlines() if " <- " in line]
    assert [json.loads(line.split(" <- ", 1)[1])["type"] for line in received] == [
        "status",
        "nfc_scan",
        "status",
    ]


async def test_acks_count_every_data_frame_read_and_can_be_withheld_or_sent_by_hand():
    async with fakeserver("--ack-delay", "0.05") as proc:
        port = await listening_port(proc)
        async with connect("ws://127.0.0.1:%d/ws?role=publisher&estacionId=1" % port) as ws:
            await recv_json(ws)  # connected
            await ws.send('{"type":"status","state":"idle","session_id":null,"wh":null}')
            await ws.send("not json")  # invalid frames count too
            await ws.send(b"\x00binary")
            acks = [await recv_json(ws)]
            while acks[-1]["n"] < 3:
                acks.append(await recv_json(ws))
            proc.send("acks off")
            proc.send("sync")  # commands run in order
            assert await recv_json(ws) == {"type": "sync_request", "from": "server"}
            await ws.send('{"type":"nfc_scan","nfc_uid":"04A1B2C3"}')
            started = await recv_json(ws)  # start (no ack: withheld)
            proc.send("ack")
            by_hand = await recv_json(ws)
            proc.send("ack 2")
            assert await recv_json(ws) == {"type": "ack", "n": 2}
            proc.send("acks maybe")
            await proc.expect("error: usage: acks on|off")
    assert all(a["type"] == "ack" for a in acks) and [a["n"] for a in acks] == sorted(
        {a["n"] for a in acks}
    ), acks  # growing, each value once
    assert started["type"] == "start" and by_hand == {"type": "ack", "n": 4}


@requires_micropython
async def test_the_firmware_link_keeps_what_the_fakeserver_does_not_ack_and_replays_it():
    # issue 10, case 7 on the bench: the fake server reads every frame (and answers pings)
    # but withholds acks; the connection ends; after the reconnect the charger sends its
    # status, then the same readings again, in order; acked, they leave the outbox.
    async with fakeserver("--no-ack") as server:
        port = await listening_port(server)
        async with charger(config(port, ping_interval_s=0.2), preload=3) as fw:
            await fw.expect("LINK True")
            for _ in range(3):
                await server.expect('<- {"type":"metrics"')
            server.send("sync")  # a barrier: answered after the rest
            await server.expect('<- {"type":"status"')
            fw.send("len")
            assert await fw.expect("LEN") == "LEN 3 3"  # sent, pongs seen, not acked
            server.send("acks on")
            server.send("close 1001 restarting")
            await fw.expect("LINK False")
            await fw.expect("LINK True")
            for _ in range(3):
                await server.expect('<- {"type":"metrics"')
            for _ in range(300):
                fw.send("len")
                if await fw.expect("LEN") == "LEN 0 0":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(fw.output())
    received = [
        json.loads(line.split(" <- ", 1)[1])
        for line in server.output().splitlines()
        if " <- " in line
    ]
    assert [m["type"] for m in received] == [
        "status",
        "metrics",
        "metrics",
        "metrics",
        "status",
        "status",
        "metrics",
        "metrics",
        "metrics",
    ]
    assert metrics_ts(received) == [1, 2, 3, 1, 2, 3]
    assert '-> {"type":"ack","n":4}' in server.output()  # the second connection's count


@requires_micropython
async def test_the_whole_firmware_replays_what_a_crashed_server_never_acked(tmp_path):
    # issue 10, case 7 with the whole firmware (tools/sim_charger.py: app, state machine,
    # emulated meter and reader) and the in-process fake server. While the session charges
    # the server reads but commits (acks) nothing, then its connection dies: the charger
    # must not have let go of any reading. After the reconnect it reports `charging` first,
    # then every reading the server never acked, in order; once acked, the outbox empties.
    import io

    from tools.fakeserver import FakeServer
    from tools.sim_charger import SimCharger

    fake = await FakeServer(ack=False, session_id=500, out=io.StringIO()).start()
    sim = SimCharger(tmp_path, "ws://127.0.0.1:%d/ws" % fake.port)
    await sim.start()
    try:
        await sim.wait_status(lambda s: s["link"])
        await sim.command("tap 04A1B2C3")
        await sim.wait_status(lambda s: s["state"] == "charging")
        await sim.wait_status(lambda s: s["outbox"] >= 4)  # one sent, unacked; the rest wait
        first = list(fake.received)
        fake.acking = True
        await fake.run_command("close 1011 server crashed")
        await sim.wait_status(lambda s: s["link"] and s["outbox"] == 0)
        await sim.command("press stop")
        st = await sim.wait_status(lambda s: s["state"] == "idle" and s["outbox"] == 0)
    finally:
        await sim.stop()
        await fake.stop()
    again = fake.received[len(first) :]
    assert [m["type"] for m in first[:3]] == ["status", "nfc_scan", "metrics"]
    assert again[0] == {
        "type": "status",
        "state": "charging",
        "session_id": 500,
        "wh": again[0]["wh"],
        "fw": "usb",
    }  # never updated: the USB-flashed version
    replay = [m["ts"] for m in again if m["type"] == "metrics"]
    sent_before = [m["ts"] for m in first if m["type"] == "metrics"]
    assert replay[: len(sent_before)] == sent_before  # the unacked one goes again first
    assert replay == sorted(set(replay))  # then the rest, in order, once
    assert len(replay) == st["readings_queued"] and st["dropped"] == 0
    assert again[-1]["type"] == "stop" and again[-1]["session_id"] == 500

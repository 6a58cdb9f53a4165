"""Over-the-air updates end to end: the real server (FIRMWARE_DIR with real bundles) and the real
firmware on the MicroPython unix port, its working directory a stand-in for the board's
filesystem (ota/state, ota/a/charger/...). A `machine.reset()` ends the process with status 3;
the test starts it again on the same directory, as the board boots again."""

import asyncio
import json
import os
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from server.hub import send
from tests.certs import needs_openssl, self_signed
from tests.firmware.mpy import FIRMWARE, MPY_CROSS, requires_micropython
from tests.live_server import base_url, receive_json, running_server, send_json, token_for
from tools.firmware_bundle import pack
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(180)]

CARD = "04A1B2C3D4E5F6"


def build_bundle(tmp: Path, version: str, out_dir: Path, patch=None) -> Path:
    """A bundle of the firmware's charger package, compiled by mpy-cross as `make firmware`
    does; `patch(name, source)` may change a module's source first."""
    build = tmp / ("build-" + version)
    (build / "charger").mkdir(parents=True)
    for src in sorted((FIRMWARE / "charger").glob("*.py")):
        text = src.read_text()
        if patch is not None:
            text = patch(src.name, text)
        copy = build / src.name
        copy.write_text(text)
        subprocess.run(
            [
                str(MPY_CROSS),
                "-march=xtensawin",
                "-O3",
                "-s",
                f"charger/{src.name}",
                "-o",
                str(build / "charger" / (src.stem + ".mpy")),
                str(copy),
            ],
            check=True,
        )
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bundle-{version}.bin"
    pack(build, version, out)
    return out


def marked(name, text):  # a version that says it runs: "ready-v2" instead of "ready"
    return text.replace('"ready", "station"', '"ready-v2", "station"') if name == "app.py" else text


def broken(name, text):  # a version that crashes at start
    return text + '\nraise RuntimeError("broken build")\n' if name == "app.py" else text


def broken_startup(name, text):  # a version whose start-up module cannot be imported
    return text + '\nraise RuntimeError("broken build")\n' if name == "startup.py" else text


def broken_build(name, text):  # a version whose start-up fails building the charger
    if name != "startup.py":
        return text
    return text.replace(
        "def charger_app():\n", 'def charger_app():\n    raise RuntimeError("broken build")\n'
    )


@pytest.fixture
async def rig(tmp_path):
    fw_dir = tmp_path / "fw"
    fw_dir.mkdir()
    async with running_server(tmp_path / "evse.sqlite3", firmware_dir=fw_dir) as app:
        user = (await app.storage.list_users())[0]
        await app.storage.add_card(CARD, user.id)
        flash = tmp_path / "flash"
        flash.mkdir()
        sim = SimCharger(
            tmp_path,
            base_url(app) + "/ws",
            fs_dir=flash,
            token=token_for(base_url(app), "publisher", 1),
        )
        try:
            yield app, sim, fw_dir, flash
        finally:
            await sim.stop()


async def boot(sim):
    """Start the firmware; True when it runs, False when it reset (status 3) at start."""
    try:
        await sim.start()
        await sim.wait_line(lambda line: line.startswith("[charger] ready"))  # (main.py: built)
        return True
    except AssertionError:
        assert await sim.wait_exit() == 3, "\n".join(sim.lines[-20:])
        return False


async def order(app, version, trust=None):
    """An admin dashboard's `admin_update_firmware` (over TLS with `trust`, an SSL context)."""
    url = base_url(app) if trust is None else base_url(app).replace("ws://", "wss://")
    token = token_for(base_url(app), "client")
    async with ws_connect(f"{url}/ws?role=client&estacionId=1&token={token}", ssl=trust) as admin:
        await send_json(
            admin,
            {"type": "admin_update_firmware", "station_id": 1, "version": version, "request_id": 1},
        )
        while True:
            reply = await receive_json(admin)
            if reply.get("request_id") == 1:
                return reply


async def wait_firmware(app, predicate, sim):
    for _ in range(600):
        state = app.firmware.state(1)
        if predicate(state):
            return state
        await asyncio.sleep(0.05)  # polling interval, not a synchronization
    raise AssertionError(
        "firmware state %r\n%s" % (app.firmware.state(1), "\n".join(sim.lines[-30:]))
    )


async def test_update_installs_switches_and_comes_back_reporting_the_new_version(rig):
    app, sim, fw_dir, flash = rig
    build_bundle(flash.parent, "2.0.0", fw_dir, marked)
    await sim.start()
    await wait_firmware(app, lambda s: s["fw"] == "usb", sim)  # the status carries `fw`
    reply = await order(app, "2.0.0")
    assert reply["type"] == "admin_result" and reply["firmware"]["update"]["result"] == "requested"
    assert await sim.wait_exit() == 3  # downloaded, verified, switched: machine.reset()
    assert (flash / "ota" / "state").read_text() == "a 2.0.0 0 usb usb -"
    assert sorted(p.name for p in (flash / "ota" / "a" / "charger").iterdir()) == sorted(
        p.stem + ".mpy" for p in (FIRMWARE / "charger").glob("*.py")
    )
    assert await boot(sim)
    await sim.wait_line(lambda line: "ready-v2 station 1" in line)  # the new code runs
    state = await wait_firmware(app, lambda s: s["update"]["result"] == "updated", sim)
    assert state == {
        "fw": "2.0.0",
        "update": {"version": "2.0.0", "result": "updated", "code": None},
    }
    assert (flash / "ota" / "state").read_text() == "a 2.0.0 ok usb usb -"
    assert not (flash / "ota" / "new.bin").exists()


async def test_a_corrupted_download_is_refused_and_the_running_version_stays(rig):
    app, sim, fw_dir, flash = rig
    bundle = build_bundle(flash.parent, "2.0.1", fw_dir)
    app.firmware.bundles.scan()  # the server has its hash now
    stat = bundle.stat()
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped on the way (same size, same mtime)
    bundle.write_bytes(bytes(data))
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    await sim.start()
    await wait_firmware(app, lambda s: s["fw"] == "usb", sim)
    assert (await order(app, "2.0.1"))["type"] == "admin_result"
    state = await wait_firmware(app, lambda s: s["update"]["result"] != "requested", sim)
    assert state["update"] == {"version": "2.0.1", "result": "refused", "code": "HASH_MISMATCH"}
    assert state["fw"] == "usb"
    assert sim.proc.returncode is None  # no reset: still the running version
    assert (await sim.status())["link"]
    assert not (flash / "ota" / "state").exists() and not (flash / "ota" / "new.bin").exists()


@pytest.mark.parametrize("patch", [broken, broken_startup, broken_build])
async def test_a_version_that_crashes_at_start_is_rolled_back(rig, patch):
    # the charger's import raising, start-up's import raising (main.py: no charger to run),
    # start-up failing to build it (the fault pattern on the running version; a reset here)
    app, sim, fw_dir, flash = rig
    build_bundle(flash.parent, "3.0.0", fw_dir, patch)
    await sim.start()
    await wait_firmware(app, lambda s: s["fw"] == "usb", sim)
    await order(app, "3.0.0")
    assert await sim.wait_exit() == 3
    crashes = 0
    while not await boot(sim):  # each crash is a boot otaboot.py counts
        crashes += 1
        assert any("broken build" in line for line in sim.lines)
        assert crashes <= 3
    assert crashes == 2  # MAX_TRIES boots of the new version, then the previous one
    state = await wait_firmware(app, lambda s: s["update"]["result"] == "rolled_back", sim)
    assert state == {
        "fw": "usb",
        "update": {"version": "3.0.0", "result": "rolled_back", "code": "NOT_ONLINE"},
    }
    assert (flash / "ota" / "state").read_text() == "usb usb ok a 3.0.0 -"


async def test_an_update_ordered_mid_session_waits_for_the_session_to_end(rig):
    app, sim, fw_dir, flash = rig
    build_bundle(flash.parent, "2.0.2", fw_dir, marked)
    await sim.start()
    await sim.wait_status(lambda s: s["link"])
    await sim.command("tap " + CARD)
    st = await sim.wait_status(lambda s: s["state"] == "charging")
    session_id = st["session_id"]
    assert (await order(app, "2.0.2"))["type"] == "admin_result"
    got = await sim.wait_line(lambda line: line.startswith("[charger] server update"))
    got = sim.lines.index(got)
    st = await sim.wait_status(lambda s: s["outbox"] == 0 and s["wh"] > 0)
    assert st["state"] == "charging" and st["relay"] is True  # the order did not stop it
    assert not any(line.startswith("[ota] download") for line in sim.lines)
    await sim.command("press stop")
    assert await sim.wait_exit() == 3  # the update ran once the session had ended
    download = next(i for i, line in enumerate(sim.lines) if line.startswith("[ota] download"))
    stopped = next(
        i
        for i, line in enumerate(sim.lines)
        if i > got and "stop" in line and line.startswith("[charger]") and "server" not in line
    )
    assert got < stopped < download
    record = await app.storage.get_session(session_id)
    assert record.ended_at is not None and record.end_reason == "local_stop"
    assert await boot(sim)
    state = await wait_firmware(app, lambda s: s["update"]["result"] == "updated", sim)
    assert state["fw"] == "2.0.2"


def never_online(name, text):  # a version that starts but never reaches the server
    if name == "wsopen.py":
        return text.replace(
            "s, _ = await asyncio.open_connection(host, port, ssl=ssl)",
            'raise OSError(0, "never online")',
        )
    return text


async def test_a_version_that_never_comes_online_is_rolled_back_after_the_timeout(rig):
    app, sim, fw_dir, flash = rig
    build_bundle(flash.parent, "4.0.0", fw_dir, never_online)
    cfg = json.loads(sim.config_path.read_text())
    sim.config_path.write_text(json.dumps({**cfg, "ota_confirm_s": 1}))
    await sim.start()
    await wait_firmware(app, lambda s: s["fw"] == "usb", sim)
    await order(app, "4.0.0")
    assert await sim.wait_exit() == 3
    for tries in (1, 2):  # it runs, is not welcomed within ota_confirm_s, resets
        assert await boot(sim)
        assert (flash / "ota" / "state").read_text() == "a 4.0.0 %d usb usb -" % tries
        assert await sim.wait_exit() == 3
        assert any(line.startswith("[ota] not online") for line in sim.lines)
        assert any("never online" in line for line in sim.lines)
    assert await boot(sim)
    state = await wait_firmware(app, lambda s: s["update"]["result"] == "rolled_back", sim)
    assert state["fw"] == "usb" and state["update"]["version"] == "4.0.0"
    assert not any("never online" in line for line in sim.lines)  # the previous code runs


async def test_a_bad_order_or_a_failed_download_leaves_the_running_version(rig):
    app, sim, _fw_dir, flash = rig
    await sim.start()
    await wait_firmware(app, lambda s: s["fw"] == "usb", sim)
    charger = app.hub.publishers[1]  # orders the server itself never sends, on its connection

    async def order(update: dict) -> None:
        # noted as the server notes its own orders: it takes only results for the version ordered
        app.firmware.state(1)["update"] = {
            "version": update["version"],
            "result": "requested",
            "code": None,
        }
        await send(charger, {"type": "update", **update})

    await order(
        {"version": "2.0.3", "url": "/firmware/2.0.3.bin", "sha256": "00", "size": 10}
    )  # not a SHA-256
    state = await wait_firmware(app, lambda s: s["update"]["result"] != "requested", sim)
    assert state["update"] == {"version": "2.0.3", "result": "failed", "code": "INVALID_MESSAGE"}
    await order(
        {"version": "9.9.9", "url": "/firmware/9.9.9.bin", "sha256": "ab" * 32, "size": 1000}
    )  # the server has no such file: 404
    state = await wait_firmware(app, lambda s: s["update"]["result"] != "requested", sim)
    assert state == {
        "fw": "usb",
        "update": {"version": "9.9.9", "result": "failed", "code": "DOWNLOAD_FAILED"},
    }
    assert sim.proc.returncode is None and (await sim.status())["link"]
    assert not (flash / "ota" / "state").exists() and not (flash / "ota" / "new.bin").exists()


@needs_openssl
async def test_the_download_goes_over_tls_with_the_pinned_ca(tmp_path):
    key, cert = self_signed(tmp_path)
    fw_dir, flash = tmp_path / "fw", tmp_path / "flash"
    flash.mkdir()
    build_bundle(tmp_path, "2.1.0", fw_dir, marked)
    async with running_server(
        tmp_path / "evse.sqlite3", firmware_dir=fw_dir, tls_cert=cert, tls_key=key
    ) as app:
        sim = SimCharger(
            tmp_path,
            f"wss://127.0.0.1:{app.port}/ws",
            fs_dir=flash,
            ca_cert=str(cert),
            token=token_for(base_url(app), "publisher", 1),
        )
        try:
            await sim.start()
            await wait_firmware(app, lambda s: s["fw"] == "usb", sim)
            await order(app, "2.1.0", ssl.create_default_context(cafile=str(cert)))
            assert await sim.wait_exit() == 3
            assert await boot(sim)
            await sim.wait_line(lambda line: "ready-v2 station 1" in line)
            state = await wait_firmware(app, lambda s: s["update"]["result"] == "updated", sim)
            assert state["fw"] == "2.1.0"
        finally:
            await sim.stop()

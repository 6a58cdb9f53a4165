"""Config validation (CPython and MicroPython), relay/buttons/LED and the app's interrupt path on
simulated pins, boot.py, and every firmware file compiling with mpy-cross as the board would."""

import importlib.util
import subprocess

import pytest

from tests.firmware.mpy import (
    FIRMWARE,
    MPY_CROSS,
    ROOT,
    case_names,
    case_names_in,
    mpy_case_results,
    requires_micropython,
    run_mpy,
)

CASES = ROOT / "tests" / "firmware" / "cases"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, CASES / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("case", case_names(_load("config_cases")))
def test_config_under_cpython(case):
    getattr(_load("config_cases"), case)()


MPY_ONLY = ("config_cases", "hardware_cases", "app_cases", "sim_cases")
MPY_CASES = [(m, c) for m in MPY_ONLY for c in case_names_in(CASES / (m + ".py"))]


@requires_micropython
@pytest.mark.parametrize("module,case", MPY_CASES, ids=["%s.%s" % p for p in MPY_CASES])
def test_under_micropython(module, case):
    results = mpy_case_results(CASES / (module + ".py"))
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]


@requires_micropython
@pytest.mark.parametrize("active_high,level", [(True, 0), (False, 1)])
def test_boot_drives_the_relay_off_first(tmp_path, active_high, level):
    (tmp_path / "config.json").write_text(
        '{"pins": {"relay": 4, "relay_active_high": %s}}' % ("true" if active_high else "false")
    )
    out = run_mpy(
        "import machine\nmachine.Pin(4).value(%d)\n" % (1 - level)
        + (FIRMWARE / "boot.py").read_text()
        + "\nprint('RELAY', machine.Pin(4).value())",
        cwd=tmp_path,
    )
    assert "RELAY %d" % level in out


@requires_micropython
def test_boot_without_a_config_still_drives_the_default_relay_pin_off(tmp_path):
    out = run_mpy(
        "import machine\nmachine.Pin(26).value(1)\n"
        + (FIRMWARE / "boot.py").read_text()
        + "\nprint('RELAY', machine.Pin(26).value())",
        cwd=tmp_path,
    )
    assert "RELAY 0" in out


FIRMWARE_FILES = sorted(p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*.py"))


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed")
@pytest.mark.parametrize("name", FIRMWARE_FILES)
def test_firmware_file_compiles_with_mpy_cross(name, tmp_path):
    out = tmp_path / "out.mpy"
    proc = subprocess.run(
        [str(MPY_CROSS), "-o", str(out), str(FIRMWARE / name)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0

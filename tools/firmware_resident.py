"""Resident heap cost of each firmware module, the method shared by both word sizes.

    python -m tools.firmware_resident [--build DIR]      (64-bit unix port)
    python -m tools.firmware_resident32 [--build DIR]    (32-bit WebAssembly port)

Builds `firmware/` as the board gets it (`tools.firmware_compile`: .mpy, -O3) unless `--build`
names a built tree, then for each module of the `charger` package starts a fresh interpreter
that imports the simulator's shims (`machine`, `network`), every standard module the firmware
imports at the top level of a module (`std_imports()`: asyncio, binascii, json, os, time, ...)
and the module's own top-level `charger` imports, and measures gc.mem_alloc() around importing
the module (gc.collect() first): its bytecode, function objects, class and module dicts,
constants and the qstrs it interns. Then the resident set: every module that stays loaded
while charging (all but those the firmware unloads: named in a `forget("charger.x")` call in
firmware/), imported together. `plan()` is that list of probes, `_PHASES` the script each
runs (`_PROBE`: the phases as one script, for a port whose gc.collect() collects at once).

The standard modules are imported first because they are the port's, not the firmware's: on
the ESP32 and the unix port `binascii`, `os` and `time` are C modules in ROM, while the
WebAssembly port wraps them in frozen Python (`binascii` keeps 1.3 KB of heap, `os` 0.6 KB)
and would charge that to whichever firmware module imports them first.

qstrs are counted smoothly. The interpreter grows its qstr pool in doubling chunks, so a
module that happens to cross a chunk boundary would be charged a few KB of pool for qstrs
that later modules will fill, and its figure would jump when an unrelated module changes.
`micropython.qstr_info()` before and after tells the pool's growth; `figure()` replaces it by
the port's bytes per pool entry (a pointer, a 2-byte hash and a 1-byte length: 11 on 64-bit,
7 on 32-bit; a test derives both from the pools each port grows) per new qstr, plus the
string data. Heap figures are deterministic on both ports: the same build gives the same
bytes. Not smoothed: where the qstr text chunk and the dict tables happen to end when the
module is imported, which moves a module's figure by up to ~250 B when the modules imported
before it change (the resident set's by ~110 B).

`measure(build_dir)` returns {"charger.x": bytes, ..., RESIDENT: bytes} on the 64-bit unix
port (the memory budget test and `make firmware`'s size report use it);
`tools.firmware_resident32.measure` the same on the 32-bit port.
"""

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.firmware_compile import compile_firmware
from tools.firmware_paths import FIRMWARE, MICROPYTHON, SHIMS

QSTR_ENTRY_BYTES = 11  # 64-bit pool entry: 8-byte pointer, 2-byte hash, 1-byte length
RESIDENT = "resident set"

# argv: standard modules, then the module's charger dependencies, to import first; then the
# modules to measure (each comma-separated). Phases: set up, read, measure, read, report; a
# port that collects at once runs them as one script (`_PROBE`), the WebAssembly port as
# separate calls, since it collects only between them (tools/firmware_resident32.py).
_PHASES = [
    """
import gc, sys, micropython
import machine, network
for name in sys.argv[1].split(",") + ["charger"] + sys.argv[2].split(","):
    if name:
        __import__(name)
m = [0, 0]
gc.collect()
""",
    "m[0] = gc.mem_alloc()\nmicropython.qstr_info()\n",
    """
for name in sys.argv[3].split(","):
    __import__(name)
gc.collect()
""",
    "m[1] = gc.mem_alloc()\nmicropython.qstr_info()\n",
    'print("heap", m[1] - m[0])\n',
]
_PROBE = "".join(_PHASES)
_QSTR = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def charger_imports(source: str) -> list[str]:
    """The `charger.*` modules a module imports at its top level (what loads with it)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module == "charger":
            found += [
                "charger." + a.name
                for a in node.names
                if (FIRMWARE / "charger" / (a.name + ".py")).exists()
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charger."):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("charger.")]
    return found


def transient_modules() -> set[str]:
    """The modules the firmware unloads after use: `forget("charger.x")` calls in firmware/."""
    found = set()
    for src in FIRMWARE.rglob("*.py"):
        found.update(re.findall(r"""forget\(["'](charger\.\w+)["']\)""", src.read_text()))
    return found


def std_imports() -> list[str]:
    """The standard modules the `charger` package imports at the top level of its modules
    (imports inside functions, like `ssl` or `ntptime`, load only when they run)."""
    found = set()
    for src in (FIRMWARE / "charger").glob("*.py"):
        for node in ast.parse(src.read_text()).body:
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return sorted(found - {"charger", "machine", "network"})


def plan(build_dir: Path) -> list[tuple[str, list[str], list[str]]]:
    """The probes, shared by both ports: (figure's name, charger modules imported first,
    modules measured): one per built `charger` module, then the resident set."""
    names = sorted(
        "charger." + p.stem for p in (build_dir / "charger").glob("*.mpy") if p.stem != "__init__"
    )
    probes = []
    for name in names:
        source = (FIRMWARE / (name.replace(".", "/") + ".py")).read_text()
        probes.append((name, charger_imports(source), [name]))
    transient = transient_modules()
    probes.append((RESIDENT, [], [n for n in names if n not in transient]))
    return probes


def probe_argv(deps: list[str], targets: list[str]) -> list[str]:
    """`_PROBE`'s arguments (after its own name)."""
    return [",".join(std_imports()), ",".join(deps), ",".join(targets)]


def figure(output: str, qstr_entry_bytes: int) -> int:
    """A probe's resident bytes from its output: the heap it grew, less the qstr pool's growth,
    plus `qstr_entry_bytes` per qstr it interned (ValueError when the output is not a
    probe's)."""
    heap = [int(line.split()[1]) for line in output.splitlines() if line.startswith("heap ")]
    pools = [tuple(map(int, m.groups())) for m in _QSTR.finditer(output)]
    if len(heap) != 1 or len(pools) != 2:
        raise ValueError("not a probe's output:\n" + output)
    (q0, data0, total0), (q1, data1, total1) = pools
    pool_growth = (total1 - data1) - (total0 - data0)
    return heap[0] - pool_growth + qstr_entry_bytes * (q1 - q0)


def _probe(where: Path, deps: list[str], targets: list[str]) -> int:
    # relative paths only: every module's path is interned as its __file__, so the figures
    # must not depend on where the checkout or the build lives
    proc = subprocess.run(
        [str(MICROPYTHON), "-c", _PROBE, *probe_argv(deps, targets)],
        env={"MICROPYPATH": "sim:.frozen"},
        cwd=str(where),
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        if proc.returncode != 0:
            raise ValueError(proc.stdout)
        return figure(proc.stdout, QSTR_ENTRY_BYTES)
    except ValueError:
        raise RuntimeError(
            "measuring %s failed:\n%s%s" % (targets, proc.stdout, proc.stderr)
        ) from None


def measure(build_dir: Path) -> dict[str, int]:
    """Each built `charger` module's resident bytes on the 64-bit unix port, and the resident
    set's (`RESIDENT`)."""
    out = {}
    with tempfile.TemporaryDirectory() as where:
        (Path(where) / "charger").symlink_to((build_dir / "charger").resolve())
        (Path(where) / "sim").symlink_to(SHIMS)
        for name, deps, targets in plan(build_dir):
            out[name] = _probe(Path(where), deps, targets)
    return out


def main(argv=None) -> int:
    missing = None if MICROPYTHON.exists() else "no micropython binary in the venv"
    return report(argv, __doc__, missing, measure)


def report(argv, doc: str, missing: str | None, measure_build) -> int:
    """The command line of a port's measurement: `--build DIR` or a fresh build, one line per
    module (this module's and tools/firmware_resident32.py's `main`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--build", type=Path, help="a built tree (default: build one)")
    args = parser.parse_args(argv)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if args.build is not None and not (args.build / "charger").is_dir():
        print(
            f"--build {args.build}: not a built firmware tree (no charger/ in it)", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = args.build
        if build_dir is None:
            build_dir = Path(tmp) / "build"
            if compile_firmware(build_dir) is None:
                return 1
        for name, size in measure_build(build_dir).items():
            print(f"{name:<20} {size:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

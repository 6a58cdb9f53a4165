"""Resident heap cost of each firmware module on the 64-bit MicroPython unix port.

    python -m tools.firmware_resident [--build DIR]

Builds `firmware/` as the board gets it (`tools.firmware_build`: .mpy, -O3) unless `--build`
names a built tree, then for each module of the `charger` package starts a fresh micropython
that imports the simulator's shims (`machine`, `network`), the standard modules the firmware
uses and the module's own top-level `charger` imports, and measures gc.mem_alloc() around
importing the module (gc.collect() first): its bytecode, function objects, class and module
dicts, constants and the qstrs it interns. Then the resident set: every module that stays
loaded while charging (all but those the firmware unloads: named in a `forget("charger.x")`
call in firmware/), imported together.

qstrs are counted smoothly. The interpreter grows its qstr pool in doubling chunks, so a
module that happens to cross a chunk boundary would be charged a few KB of pool for qstrs
that later modules will fill, and its figure would jump when an unrelated module changes.
`micropython.qstr_info()` before and after tells the pool's growth; the figure replaces it
by `QSTR_ENTRY_BYTES` per new qstr (a 64-bit pool entry: pointer, hash, length) plus the
string data. Heap figures on the unix port are deterministic: the same build gives the same
bytes. The 32-bit ESP32 needs roughly half.

`measure(build_dir)` returns {"charger.x": bytes, ..., RESIDENT: bytes} (the memory budget
test and `make firmware`'s size report use it).
"""

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.firmware_build import FIRMWARE, ROOT, build

MICROPYTHON = Path(sys.executable).parent / "micropython"
SHIMS = ROOT / "tools" / "sim"
QSTR_ENTRY_BYTES = 11
RESIDENT = "resident set"

# argv: dependencies to import first, then the modules to measure (comma-separated)
_PROBE = """
import gc, sys, micropython
import machine, network, asyncio, json, time
import charger
for name in sys.argv[1].split(","):
    if name:
        __import__(name)
gc.collect()
micropython.qstr_info()
before = gc.mem_alloc()
for name in sys.argv[2].split(","):
    __import__(name)
gc.collect()
print("heap", gc.mem_alloc() - before)
micropython.qstr_info()
"""
_QSTR = re.compile(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)")


def charger_imports(source: str) -> list[str]:
    """The `charger.*` modules a module imports at its top level (what loads with it)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module == "charger":
            found += ["charger." + a.name for a in node.names
                      if (FIRMWARE / "charger" / (a.name + ".py")).exists()]
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


def _probe(where: Path, deps: list[str], targets: list[str]) -> int:
    # relative paths only: every module's path is interned as its __file__, so the figures
    # must not depend on where the checkout or the build lives
    proc = subprocess.run([str(MICROPYTHON), "-c", _PROBE, ",".join(deps), ",".join(targets)],
                          env={"MICROPYPATH": "sim:.frozen"}, cwd=str(where),
                          capture_output=True, text=True, timeout=60)
    heap = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("heap ")]
    pools = [tuple(map(int, m.groups())) for m in _QSTR.finditer(proc.stdout)]
    if proc.returncode != 0 or not heap or len(pools) != 2:
        raise RuntimeError("measuring %s failed:\n%s%s" % (targets, proc.stdout, proc.stderr))
    (q0, data0, total0), (q1, data1, total1) = pools
    pool_growth = (total1 - data1) - (total0 - data0)
    return heap[0] - pool_growth + QSTR_ENTRY_BYTES * (q1 - q0)


def measure(build_dir: Path) -> dict[str, int]:
    """Each built `charger` module's resident bytes, and the resident set's (`RESIDENT`)."""
    names = sorted("charger." + p.stem for p in (build_dir / "charger").glob("*.mpy")
                   if p.stem != "__init__")
    out = {}
    with tempfile.TemporaryDirectory() as where:
        (Path(where) / "charger").symlink_to((build_dir / "charger").resolve())
        (Path(where) / "sim").symlink_to(SHIMS)
        for name in names:
            source = (FIRMWARE / (name.replace(".", "/") + ".py")).read_text()
            out[name] = _probe(Path(where), charger_imports(source), [name])
        transient = transient_modules()
        out[RESIDENT] = _probe(Path(where), [], [n for n in names if n not in transient])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="a built tree (default: build one)")
    args = parser.parse_args(argv)
    if not MICROPYTHON.exists():
        print("no micropython binary in the venv", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = args.build
        if build_dir is None:
            build_dir = Path(tmp) / "build"
            if build(build_dir, quiet=True) != 0:
                return 1
        for name, size in measure(build_dir).items():
            print(f"{name:<20} {size:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

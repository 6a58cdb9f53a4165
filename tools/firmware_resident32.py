"""Resident heap cost of each firmware module on a 32-bit MicroPython (the WebAssembly port).

    python -m tools.firmware_resident32 [--build DIR]     (make firmware prints it too)

The same measurement as `tools/firmware_resident.py` (its `plan()`, `_PHASES` and `figure()`:
same modules, same standard modules imported first, same smooth qstr accounting) on the
WebAssembly port of MicroPython (`tools/wasm32.py`: wasm32, 4-byte pointers, 16-byte GC
blocks like the ESP32's): the same built `.mpy` files (bytecode only, so the xtensawin build
loads on any port), the simulator's shims, each probe in a fresh interpreter, all in one Node
process. A qstr pool entry is 7 bytes here (4-byte pointer, 2-byte hash, 1-byte length).

One difference the port forces: its gc.collect() frees nothing while Python runs (a wasm
stack cannot be scanned, so it only asks for a collection once the call returns to
JavaScript), so the probe's phases run as separate calls, collecting between them. A probe
run as one call counts every byte of garbage the import made (6.4 KB for the 13 modules).

`measure(build_dir)` returns {"charger.x": bytes, ..., RESIDENT: bytes} like the 64-bit one.
What it cannot tell about an ESP32: see docs/architecture.md ("Firmware heap on 32 bits").
"""

import sys
from pathlib import Path

from tools import wasm32
from tools.firmware_paths import SHIMS
from tools.firmware_resident import _PHASES, figure, plan, probe_argv, report

QSTR_ENTRY_BYTES = 7  # 32-bit pool entry: 4-byte pointer, 2-byte hash, 1-byte length
HEAPSIZE = 1024 * 1024


def measure(build_dir: Path) -> dict[str, int]:
    """Each built `charger` module's resident bytes on the 32-bit port, and the resident
    set's (`RESIDENT`). RuntimeError when the port is missing or a probe fails."""
    # relative paths, as on the unix port: each module's __file__ is interned
    files = {
        **wasm32.tree(build_dir / "charger", "/w/charger", "*.mpy"),
        **wasm32.tree(SHIMS, "/w/sim", "*.py"),
    }
    probes = plan(build_dir)
    # the probe's phases as separate calls: this port collects garbage only between them
    runs = [
        {
            "code": _PHASES,
            "cwd": "/w",
            "path": ["", "sim", ".frozen"],
            "heapsize": HEAPSIZE,
            "argv": ["", *probe_argv(deps, targets)],
        }
        for _, deps, targets in probes
    ]
    out = {}
    for (name, _, targets), (output, status) in zip(probes, wasm32.run(files, runs)):
        try:
            if status != 0:
                raise ValueError(output)
            out[name] = figure(output, QSTR_ENTRY_BYTES)
        except ValueError:
            raise RuntimeError(
                "measuring %s on the 32-bit port failed:\n%s" % (targets, output)
            ) from None
    return out


def main(argv=None) -> int:
    return report(argv, __doc__, wasm32.missing(), measure)


if __name__ == "__main__":
    sys.exit(main())

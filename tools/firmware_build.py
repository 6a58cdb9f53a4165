"""Compile `firmware/` with mpy-cross into `firmware-build/` and print a size report.

`python -m tools.firmware_build [--out DIR] [--lines]`. boot.py and main.py stay source
(MicroPython runs those two by name); every module of the `charger` package becomes a `.mpy`
(no parsing on the device, less RAM), optimized with `-O3` (no line-number tables) unless
`--lines`. `config.json`, when present, is copied along. Exits 1 when a file does not compile.
When the venv has the micropython binary, the report has a `64-bit` column: each module's
heap once imported on the 64-bit unix port, and the resident set while charging
(tools/firmware_resident.py); beside it the `32-bit` column, the same measured on the
WebAssembly port (tools/firmware_resident32.py; `npm ci` in tools/wasm installs it), the
nearest figure to an ESP32's (docs/architecture.md says what it cannot tell).
"""

import argparse
import sys
from pathlib import Path

from tools import firmware_resident, firmware_resident32, wasm32
from tools.firmware_compile import compile_firmware
from tools.firmware_paths import MICROPYTHON, ROOT


def build(out: Path, lines: bool = False, quiet: bool = False, resident: bool = False) -> int:
    """Compile into `out` (tools/firmware_compile.py) and, unless `quiet`, print the report
    (with the resident-heap columns when `resident`). 1 when a module does not compile."""
    rows = compile_firmware(out, lines)
    if rows is None:
        return 1
    if quiet:
        return 0
    columns = {}  # header: {row name: resident bytes}
    not_measured = None
    if resident:
        columns["64-bit"] = _rows(firmware_resident.measure(out))
        not_measured = wasm32.missing()
        if not_measured is None:
            columns["32-bit"] = _rows(firmware_resident32.measure(out))
    width = max(len(r[0]) for r in rows)
    head = "".join(f"  {h:>7}" for h in columns)
    print(f"{'file':<{width}}  {'source':>7}  {'built':>7}{head}")
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    for name, src_size, built in rows:
        cells = "".join(f"  {c.get(name, ''):>7}" for c in columns.values())
        print(f"{name:<{width}}  {src_size:>7}  {built:>7}{cells}")
    if columns:
        print(
            "64-bit, 32-bit: heap bytes once imported on the unix port and on the WebAssembly"
            " port (an ESP32: about the 32-bit figure); total: the modules loaded while"
            " charging"
        )
    if not_measured:
        print("32-bit: not measured: " + not_measured)
    return 0


def _rows(resident: dict) -> dict:
    """A measurement keyed by the report's row names ("charger/x.mpy", "total")."""
    rows = {f"{name.replace('.', '/')}.mpy": size for name, size in resident.items()}
    rows["total"] = rows.pop(firmware_resident.RESIDENT.replace(".", "/") + ".mpy")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "firmware-build")
    parser.add_argument(
        "--lines",
        action="store_true",
        help="keep line numbers for tracebacks (debugging; more RAM)",
    )
    args = parser.parse_args(argv)
    return build(args.out, args.lines, resident=MICROPYTHON.exists())


if __name__ == "__main__":
    sys.exit(main())

"""Compile `firmware/` with mpy-cross into `firmware-build/` and print a size report.

`python -m tools.firmware_build [--out DIR] [--lines]`. boot.py and main.py stay source
(MicroPython runs those two by name); every module of the `charger` package becomes a `.mpy`
(no parsing on the device, less RAM), optimized with `-O3` (no line-number tables) unless
`--lines`. `config.json`, when present, is copied along. Exits 1 when a file does not compile.
When the venv has the micropython binary, the report has a `resident` column: each module's
heap once imported on the 64-bit unix port, and the resident set while charging
(tools/firmware_resident.py; the ESP32 needs roughly half).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def build(out: Path, lines: bool = False, quiet: bool = False, resident: bool = False) -> int:
    # -O3: no line-number tables (about 3 % less RAM for the loaded code; tracebacks then
    # name the function but not the line); -s: a short source name, not the build path
    flags = [] if lines else ["-O3"]
    if out.exists():
        shutil.rmtree(out)
    (out / "charger").mkdir(parents=True)
    rows = []
    for src in sorted((FIRMWARE / "charger").glob("*.py")):
        dst = out / "charger" / (src.stem + ".mpy")
        proc = subprocess.run([str(MPY_CROSS), "-march=xtensawin", *flags,
                               "-s", f"charger/{src.name}", "-o", str(dst), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr.strip(), file=sys.stderr)
            return 1
        rows.append((f"charger/{dst.name}", src.stat().st_size, dst.stat().st_size))
    for name in ("boot.py", "main.py", "config.json"):
        if (FIRMWARE / name).exists():
            shutil.copy(FIRMWARE / name, out / name)
            size = (out / name).stat().st_size
            rows.append((name, size, size))
    if quiet:
        return 0
    heap = {}
    if resident:
        from tools.firmware_resident import RESIDENT, measure
        heap = {f"{name.replace('.', '/')}.mpy": size for name, size in measure(out).items()}
        heap["total"] = heap.pop(RESIDENT.replace(".", "/") + ".mpy")
    width = max(len(r[0]) for r in rows)
    column = f"  {'resident':>8}" if heap else ""
    print(f"{'file':<{width}}  {'source':>7}  {'built':>7}{column}")
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    for name, src_size, built in rows:
        cell = f"  {heap.get(name, ''):>8}" if heap else ""
        print(f"{name:<{width}}  {src_size:>7}  {built:>7}{cell}")
    if heap:
        print("resident: heap bytes once imported, 64-bit unix port (ESP32: about half);"
              " total: the modules loaded while charging")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "firmware-build")
    parser.add_argument("--lines", action="store_true",
                        help="keep line numbers for tracebacks (debugging; more RAM)")
    args = parser.parse_args(argv)
    from tools.firmware_resident import MICROPYTHON
    return build(args.out, args.lines, resident=MICROPYTHON.exists())


if __name__ == "__main__":
    sys.exit(main())

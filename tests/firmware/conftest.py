"""Firmware tests: put `firmware/` on sys.path so CPython imports the pure modules."""

import sys

from tests.firmware.mpy import FIRMWARE

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

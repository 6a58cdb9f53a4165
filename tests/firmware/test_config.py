"""What the config costs the charger's RAM for good: the dict the firmware keeps after boot.

The validation rules themselves are cases (tests/firmware/cases/config_cases.py, CPython and
MicroPython); this runs the real MicroPython unix port only.
"""

from tests.firmware.mpy import requires_micropython, run_mpy

_KEPT = """
import gc
import charger
def clobber(n):  # overwrite stale stack slots: the GC scans the stack conservatively
    x = y = z = w = None
    return clobber(n - 1) if n else 0
def clean():
    clobber(60)
    gc.collect()
def boot():
    from charger import config
    cfg = config.validate({"server_url": "ws://192.168.1.10:3000/ws", "station": 1})
    charger.forget("charger.config")  # as the firmware does after boot
    return cfg
cfg = boot()
clean(); before = gc.mem_alloc()
assert cfg["pins"]["relay"] == 26 and cfg["metrics_interval_s"] == 3
cfg = None
clean()
print("KEPT", before - gc.mem_alloc())
"""


@requires_micropython
def test_the_config_the_firmware_keeps_after_boot_is_under_1_kb():
    # defaults, pins and the given values: 13 keys, 14 pins (64-bit unix port objects).
    # Default keys are interned names, not a 64-byte string object each (+500 B if they were)
    out = run_mpy(_KEPT)
    kept = int(out.split("KEPT")[1].split()[0])
    assert 0 < kept <= 1024, out

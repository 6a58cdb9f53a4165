"""The outbox keeps readings and events bounded, ordered, and allocates nothing per put.

The behaviour cases (tests/firmware/cases/outbox_cases.py) run under CPython and under the
real MicroPython unix port; the allocation and memory checks run under MicroPython only.
"""

import importlib.util

import pytest

from tests.firmware.mpy import ROOT, case_names, mpy_case_results, requires_micropython, run_mpy

CASES = ROOT / "tests" / "firmware" / "cases" / "outbox_cases.py"


def _cases():
    spec = importlib.util.spec_from_file_location("outbox_cases", CASES)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


NAMES = case_names(_cases())


@pytest.mark.parametrize("case", NAMES)
def test_outbox_case_under_cpython(case):
    getattr(_cases(), case)()


@requires_micropython
@pytest.mark.parametrize("case", NAMES)
def test_outbox_case_under_micropython(case):
    results = mpy_case_results(CASES)
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]


_NO_ALLOC = """
import gc, micropython
from charger.outbox import Outbox
box = Outbox(readings=200, events=32)
v = 231.4; a = 15.93; w = 3650.2; wh = 123456; ts = 1700000000
def fill(n):
    i = 0
    while i < n:
        box.put_reading(42, v, a, w, wh, ts)
        i += 1
fill(300)            # warm-up: the outbox is full, every put now drops the oldest reading
box.put_event('stop', 42, wh, ts)
def locked():
    fill(1000)
    box.put_event('emergency', 42, wh, ts)
    box.put_event('meter_failure', 42, None, ts)
ok = False
gc.collect()
micropython.heap_lock()
try:
    locked()
    ok = True
except MemoryError:
    pass
micropython.heap_unlock()
print('NOALLOC', ok, len(box), box.dropped)
"""


@requires_micropython
def test_putting_readings_into_a_full_outbox_allocates_nothing():
    # heap_lock() turns any allocation into MemoryError: stricter than mem_alloc deltas
    # (200 readings and the 3 events: stop, emergency, a stop for a meter failure)
    out = run_mpy(_NO_ALLOC)
    assert "NOALLOC True 203 1100" in out, out


_FOOTPRINT = """
import gc
gc.collect()
before = gc.mem_alloc()
from charger.outbox import Outbox
gc.collect()
mid = gc.mem_alloc()
box = Outbox(readings=200, events=32)
gc.collect()
print('BYTES', gc.mem_alloc() - mid)
"""


@requires_micropython
def test_an_outbox_of_200_readings_and_32_events_takes_5_kb_of_arrays_and_little_more():
    # 200 x 24 + 32 x 20 = 5,440 bytes in two arrays (the same on the 32-bit ESP32); the rest
    # is the objects, the counters and the ring state (64-bit unix port objects)
    out = run_mpy(_FOOTPRINT)
    size = int(out.split("BYTES")[1].split()[0])
    assert 5440 <= size <= 5440 + 512, out

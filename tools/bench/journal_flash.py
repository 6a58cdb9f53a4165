"""Session journal benchmark: flash bytes and writes per hour of charging, heap per write.

    python -m tools.bench.journal_flash [--hours 1] [--interval 3]

Runs the real firmware's journal (charger/outbox.py `Journal`, charger/jfile.py,
charger/jboot.py) on the MicroPython unix port with a real file, for a session of `--hours`
of readings every `--interval` seconds (1,200 an hour at the default 3 s), twice:

- `online`: the link sends each reading and the server acknowledges it before the next one
  (the journal then holds only what is not acknowledged yet);
- `offline`: nothing is acknowledged (the outbox fills, its oldest readings are dropped).

Each run starts the session (its first reading), charges, then stops it (the `stop`, and
online its acknowledgement). One JSON line, per run:

    writes                  flash writes (appends, compactions counted apart)
    compactions             of them, compactions (a new file renamed over the journal)
    bytes_appended          bytes the appends added to the file
    bytes_compacted         bytes the compactions wrote (the whole new file each time)
    bytes_per_write         bytes_appended / appends
    erases_per_hour         littlefs: one 4 KB block per append (the file's last block is
                            copied to a new one) plus the compactions' blocks
    alloc_per_write_bytes   heap one append allocates (average, max; gc.mem_alloc() around
                            the put that made it, the collector off; the modules kept loaded:
                            their load is not counted)
    wear_hours_500_blocks   charging hours until ~500 blocks of 4 KB (a 4 MB ESP32's ~2 MB
                            filesystem) reach 100,000 erases, levelled

and `write_heap_needed_bytes`: the least free heap (after a gc.collect(), the rest of the heap
taken by ballast) under which a write of 10 readings succeeds, the firmware built as the board
gets it (.mpy): charger/jfile.py's load, the records, the file's open and write (found by
bisection, 16 B; the same build gives the same figure).

Figures, not assertions: tests/firmware/test_journal.py tests the journal's behaviour.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.firmware_build import build
from tools.firmware_paths import MICROPYTHON, ROOT, SHIMS
from tools.sim_charger import mpy_env

_SCRIPT = """
import gc, os, sys
import charger
charger.forget = lambda name: None  # keep jfile/jboot loaded: their load is not counted
from charger import jboot
from charger.outbox import Journal
P = %(path)r
N = %(n)d
ONLINE = %(online)d
T = 1750000000

def size():
    try:
        return os.stat(P)[6]
    except OSError:
        return 0

j = Journal(P)
jboot.boot(j, True)
appends = comp = app_bytes = comp_bytes = 0
allocs = []
def step(fn, *args):
    global appends, comp, app_bytes, comp_bytes
    w, before = j.state[4], size()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    fn(*args)
    a = gc.mem_alloc() - a
    gc.enable()
    done = j.state[4] - w
    if done == 1:
        appends += 1
        app_bytes += size() - before
        allocs.append(a)
    elif done == 2:  # a compaction, then the append
        comp += 1
        appends += 1
        after = size()
        comp_bytes += after  # (the append's share is small: counted in the compaction)

def send():  # the link sends everything, the server acknowledges it (a write if an event)
    while j.next_unsent() is not None:
        pass
    step(j.confirm)
for i in range(N):
    step(j.put_reading, 41, 230.0, 8.7, 2000.0, 100 + i, T + 3 * i)
    if ONLINE:
        send()
step(j.put_event, "stop", 41, 100 + N, T + 3 * N)
if ONLINE:
    send()
print(appends, comp, app_bytes, comp_bytes, sum(allocs) // max(1, len(allocs)), max(allocs))
"""


_HEAP = """
import gc
from charger.outbox import Journal
j = Journal(%(path)r)
j.state[0] = True  # journaling on, as after the boot replay
for i in range(10):  # the first written at once; the 11th makes a write of 10 readings
    j.put_reading(5, 230.0, 8.7, 2000.0, 100 + i, 1750000000 + i)
ballast = []
cap = 4096
while True:
    gc.collect()
    c = min(cap, gc.mem_free() - %(free)d - 48)
    if c < 16:
        break
    try:
        ballast.append(bytearray(c))
    except MemoryError:
        cap //= 2
        if cap < 16:
            break
gc.collect()
j.put_reading(5, 230.0, 8.7, 2000.0, 110, 1750000010)
print(j.state[4], j.state[5])
"""


def write_heap_needed() -> int:
    """The least free heap a 10-reading journal write succeeds with (`_HEAP`, bisected)."""
    with tempfile.TemporaryDirectory() as d:
        build(Path(d) / "build", quiet=True)
        path = "%s:%s/build:.frozen" % (SHIMS, d)

        def ok(free: int) -> bool:
            script = _HEAP % {"path": d + "/journal%d.bin" % free, "free": free}
            out = subprocess.run(
                [str(MICROPYTHON), "-X", "heapsize=64K", "-c", script],
                env=mpy_env(path=path),
                cwd=str(ROOT),
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            return out.split() == ["2", "0"]  # two writes, none refused

        lo, hi = 0, 32768
        if not ok(hi):
            raise RuntimeError("a journal write fails even with %d B free" % hi)
        while hi - lo > 16:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return hi


def run(n: int, online: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        script = _SCRIPT % {"path": d + "/journal.bin", "n": n, "online": int(online)}
        out = subprocess.run(
            [str(MICROPYTHON), "-c", script],
            env=mpy_env(),
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    appends, comp, app_bytes, comp_bytes, alloc_avg, alloc_max = map(int, out.split())
    return {
        "writes": appends + comp,
        "compactions": comp,
        "bytes_appended": app_bytes,
        "bytes_compacted": comp_bytes,
        "bytes_per_write": round(app_bytes / max(1, appends), 1),
        "alloc_per_write_bytes": {"avg": alloc_avg, "max": alloc_max},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between readings")
    args = parser.parse_args(argv)
    if not (args.hours > 0 and args.interval > 0):
        parser.error("--hours and --interval must be positive")
    if not MICROPYTHON.exists():
        print("no micropython binary: `make venv`", file=sys.stderr)
        return 2
    n = int(args.hours * 3600 / args.interval)
    result: dict = {"readings": n, "hours": args.hours}
    for name, online in (("online", True), ("offline", False)):
        r = run(n, online)
        per_hour = 1 / args.hours
        erases = (r["writes"] - r["compactions"]) + r["compactions"] * (
            1 + r["bytes_compacted"] // max(1, r["compactions"]) // 4096
        )
        r["bytes_per_hour"] = round((r["bytes_appended"] + r["bytes_compacted"]) * per_hour)
        r["writes_per_hour"] = round(r["writes"] * per_hour, 1)
        r["erases_per_hour"] = round(erases * per_hour, 1)
        r["wear_hours_500_blocks"] = round(500 * 100_000 / max(1e-9, erases * per_hour))
        result[name] = r
    result["write_heap_needed_bytes"] = write_heap_needed()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

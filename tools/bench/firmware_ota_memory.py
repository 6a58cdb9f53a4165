"""Firmware heap during an over-the-air update, on the unix port: one JSON line.

    python -m tools.bench.firmware_ota_memory

The firmware compiled as the board gets it (.mpy) boots against the real server, connects, and
is sent an update (the real charger package, ~30 KB), twice, each time in a fresh process:

- `refused`: the bundle reaches it with one byte changed: it loads charger/ota.py, downloads and
  hashes the whole file, refuses it and unloads the update's modules, all without a reset, so
  the figures before, during and after come from the same process;
- `installed`: the good bundle: the same download, then the unpack into the other slot, the
  switch and machine.reset(); the simulator prints the peak (`SIM peak N`) as it resets.

The peaks are sampled every 1 ms by the simulator's `mem watch`, as in `make bench-firmware`
(the heap after a gc.collect() wherever the firmware awaits: a synchronous step's own
temporaries between two awaits are not seen), not corrected for the qstr pool.
`qstrs_added_by_update` is how many names the refused update interned for good (the pool never
shrinks); `qstrs_firmware_before_update` / `_after_update` the firmware's names as `make
bench-firmware` counts them, and `qstr_pool_correction_after_bytes` its correction after the
update: past 300 names a firmware alone takes the pool's next chunk (3.5 KB on 64-bit) at once,
which the simulator's names, loaded first, hide here (docs/performance.md);
`peak_heap_alone_bytes` is the peak with that correction. tests/firmware/test_ota_memory.py asserts both
peaks stay within 65,536 B. Not in `make test` as a command; its figures are.
"""

import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from server.app import App
from server.config import Config
from tools.bench.firmware_memory import _qstrs as sim_qstrs
from tools.bench.firmware_memory import compile_modules, qstr_pool_bytes
from tools.firmware_bundle import pack
from tools.sim_charger import SimCharger

LIMIT = 65536  # bytes: issue 13's bound for the firmware's peak heap on the 64-bit unix port
_QSTRS = re.compile(r"qstr pool: n_pool=\d+, n_qstr=(\d+)")


async def _qstrs(sim) -> int:
    mark = len(sim.lines)
    await sim.command("mem qstr")
    return int(next(m.group(1) for line in sim.lines[mark:] if (m := _QSTRS.match(line))))


async def _run(tmp: Path, dirs, fw: Path, corrupt: bool) -> dict:
    bundle = fw / "bundle-bench.bin"
    pack(dirs[1], "bench", bundle)
    app = await App.start(
        Config(
            host="127.0.0.1",
            port=0,
            db_path=tmp / "b.sqlite3",
            demo=True,
            log_level="WARNING",
            firmware_dir=fw,
        )
    )
    app.firmware.bundles.scan()  # the hash of the good file
    data = bundle.read_bytes()
    if corrupt:  # one byte changes on disk, the time stamp does not (the server keeps its hash)
        stat = bundle.stat()
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 1
        bundle.write_bytes(bytes(changed))
        os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    flash = tmp / "flash"
    flash.mkdir()
    sim = SimCharger(
        tmp,
        f"ws://127.0.0.1:{app.port}/ws",
        token=app.demo_key,
        heapsize="512K",
        module_dirs=dirs,
        fs_dir=flash,
    )
    try:
        await sim.start()
        await sim.wait_status(lambda s: s["link"])
        before = json.loads(await sim.command("mem gc"))
        qstrs = await _qstrs(sim)
        await sim.command("mem watch")
        # the admin's order (server/firmware.py counts only results for the version ordered)
        await app.firmware.order(app, {"station_id": 1, "version": "bench"})
        out = {"bundle_bytes": len(data), "heap_before_update_bytes": before["firmware_heap"]}
        if not corrupt:
            assert await sim.wait_exit(timeout=120) == 3, "\n".join(sim.lines[-20:])
            peak = next(int(line.split()[2]) for line in sim.lines if line.startswith("SIM peak"))
            out["peak_heap_bytes"] = peak
            out["switched"] = (flash / "ota" / "state").read_text().startswith("a bench 0")
        else:
            await sim.wait_line(lambda line: line.startswith("[ota] hash mismatch"), timeout=120)
            while app.firmware.state(1)["update"]["result"] == "requested":  # the refusal (the
                await asyncio.sleep(0.05)  # install's tail after it runs before the next command)
            after = json.loads(await sim.command("mem gc"))
            out["peak_heap_bytes"] = after["live_peak"]
            out["heap_after_update_bytes"] = after["firmware_heap"]
            out["update_result"] = app.firmware.state(1)["update"]
            now = await _qstrs(sim)
            out["qstrs_added_by_update"] = now - qstrs
            # as `make bench-firmware`: the pool arrays the firmware's names would need alone
            # (the simulator's took the first chunks here), before and after the update
            counts = sim_qstrs(sim.lines)
            sim_n = counts[0] + counts[2] - counts[1]
            pool = qstr_pool_bytes()
            out["qstrs_firmware_before_update"] = qstrs - sim_n
            out["qstrs_firmware_after_update"] = now - sim_n
            out["qstr_pool_correction_after_bytes"] = pool[now - sim_n] - (pool[now] - pool[sim_n])
        out["memory_errors"] = sum("MemoryError" in line for line in sim.lines)
        return out
    finally:
        await sim.stop()
        await app.stop()


async def measure() -> dict:
    # a directory of fixed length, as `make bench-firmware`'s: the modules' paths are interned
    # (__file__), so a longer one (pytest's tmp_path) would add ~1 KB to every figure
    with tempfile.TemporaryDirectory(prefix="fw-ota-", dir="/tmp") as tmp:
        tmp = Path(tmp)
        dirs = compile_modules(tmp)
        result = {"bench": "firmware_ota_memory", "limit_bytes": LIMIT}
        for name, corrupt in (("refused", True), ("installed", False)):
            (tmp / name / "fw").mkdir(parents=True)
            result[name] = await _run(tmp / name, dirs, tmp / name / "fw", corrupt)
    result["peak_heap_bytes"] = max(result[n]["peak_heap_bytes"] for n in ("refused", "installed"))
    # the firmware alone (no simulator's names in the pool's first chunks), as `make
    # bench-firmware` reports it: the refused run's correction, with every name the update
    # interns (the installed run interns the same ones)
    result["peak_heap_alone_bytes"] = (
        result["peak_heap_bytes"] + result["refused"]["qstr_pool_correction_after_bytes"]
    )
    return result


def main() -> int:
    result = asyncio.run(measure())
    print(json.dumps(result))
    errors = result["refused"]["memory_errors"] + result["installed"]["memory_errors"]
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

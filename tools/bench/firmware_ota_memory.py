"""Firmware heap during an over-the-air update, on the unix port: one JSON line.

    python -m tools.bench.firmware_ota_memory

The firmware compiled as the board gets it (.mpy) boots against the real server, connects, and
is sent an update whose bundle (the real charger package, ~26 KB) reaches it with one byte
changed: it loads charger/ota.py, downloads and hashes the whole file, refuses it and unloads
the module, all without a reset, so the figures come from the same process (sampled every 1 ms
by the simulator's `mem watch`, as `make bench-firmware`). A good bundle takes the same path
and then unpacks it with the same 512-byte buffer before it resets. Not in `make test`.
"""

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from server.app import App
from server.config import Config
from tools.bench.firmware_memory import compile_modules
from tools.firmware_bundle import pack
from tools.sim_charger import SimCharger


async def measure(tmp: Path) -> dict:
    dirs = compile_modules(tmp)
    fw = tmp / "fw"
    fw.mkdir()
    bundle = fw / "bundle-bench.bin"
    pack(dirs[1], "bench", bundle)
    app = await App.start(Config(host="127.0.0.1", port=0, db_path=tmp / "b.sqlite3", demo=True,
                                 log_level="WARNING", firmware_dir=fw))
    app.firmware.bundles.scan()  # the hash of the good file; then one byte changes on disk
    stat = bundle.stat()
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    bundle.write_bytes(bytes(data))
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    flash = tmp / "flash"
    flash.mkdir()
    sim = SimCharger(tmp, f"ws://127.0.0.1:{app.port}/ws", token=app.demo_key, heapsize="512K",
                     module_dirs=dirs, fs_dir=flash)
    try:
        await sim.start()
        await sim.wait_status(lambda s: s["link"])
        before = json.loads(await sim.command("mem gc"))
        await sim.command("mem watch")
        connection = app.hub.publishers[1]
        await app.firmware._send_order(1, "bench", connection)
        await sim.wait_line(lambda line: line.startswith("[ota] hash mismatch"), timeout=120)
        while app.firmware.state(1)["update"] is None:
            await asyncio.sleep(0.05)
        after = json.loads(await sim.command("mem gc"))
        return {
            "bench": "firmware_ota_memory",
            "bundle_bytes": len(data),
            "heap_before_update_bytes": before["firmware_heap"],
            "peak_heap_during_update_bytes": after["live_peak"],
            "heap_after_update_bytes": after["firmware_heap"],
            "update_result": app.firmware.state(1)["update"],
            "memory_errors": sum("MemoryError" in line for line in sim.lines),
        }
    finally:
        await sim.stop()
        await app.stop()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(Path(tmp)))
    print(json.dumps(result))
    return 0 if result["memory_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

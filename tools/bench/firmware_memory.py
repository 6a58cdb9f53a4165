"""Firmware memory benchmark: the real firmware on the MicroPython unix port, scripted session.

    python -m tools.bench.firmware_memory [--readings 200] [--heapsize 96K]

Starts the real server (demo data, a card for the emulated reader) on 127.0.0.1:0 and the
firmware with emulated hardware under `micropython -X heapsize=...`, then runs: connect, tap,
N metrics readings (1 s apart), STOP, 5 link drops and reconnects, EMERGENCY, the reset
gesture. Heap figures come from the firmware process itself (`micropython.mem_peak()`,
`mem_total()`, `gc.mem_alloc()`; the unix port is 64-bit, roughly twice the ESP32's sizes).
Ends with one JSON line:

    peak_heap_bytes                   the largest heap in use at any moment (since start)
    heap_after_bytes                  heap in use after the scenario and a gc.collect()
    bytes_allocated_per_metrics_cycle bytes allocated per metrics interval while charging,
                                      everything included (meter polls, buttons, LED, link,
                                      the simulator's stdin polling)
    memory_errors                     MemoryError lines seen in the firmware's output
"""

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.app import App
from server.config import Config
from tools.firmware_build import MPY_CROSS, build
from tools.sim_charger import ROOT, SimCharger

CARD = "04A1B2C3D4E5F6"


def log(*args):
    print(*args, file=sys.stderr)


async def _mem(sim, collect=False):
    return json.loads(await sim.command("mem gc" if collect else "mem"))


def compile_modules(tmp_path: Path) -> list[Path]:
    """The firmware as the board gets it (.mpy from `make firmware`) and the shims as .mpy:
    compiling source on the device would cost heap the board never spends."""
    firmware = tmp_path / "firmware-build"
    if build(firmware) != 0:
        raise SystemExit("firmware does not compile")
    sim = tmp_path / "sim"
    sim.mkdir()
    for src in (ROOT / "tools" / "sim").glob("*.py"):
        if src.name != "run_charger.py":
            subprocess.run([str(MPY_CROSS), "-o", str(sim / (src.stem + ".mpy")), str(src)],
                           check=True)
    return [sim, firmware]


async def scenario(readings: int, heapsize: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with contextlib.redirect_stdout(sys.stderr):
            dirs = compile_modules(tmp_path)
        app = await App.start(Config(host="127.0.0.1", port=0, db_path=tmp_path / "b.sqlite3",
                                     demo=True, log_level="WARNING"))
        sim = None
        try:
            user = (await app.storage.list_users())[0]
            await app.storage.add_card(CARD, user.id)
            sim = SimCharger(tmp_path, f"ws://127.0.0.1:{app.port}/ws", heapsize=heapsize,
                             module_dirs=dirs)
            await sim.start()
            await sim.wait_status(lambda s: s["link"])
            log("connected; tapping")
            await sim.command("tap " + CARD)
            await sim.wait_status(lambda s: s["state"] == "charging")
            await sim.wait_status(lambda s: s["readings_queued"] >= 5)
            before = await _mem(sim)
            started = time.monotonic()
            target = before["readings_queued"] + readings
            while (await _mem(sim))["readings_queued"] < target:
                await asyncio.sleep(1.0)  # a benchmark pacing its polls, not a test sync
            after = await _mem(sim)
            cycles = after["readings_queued"] - before["readings_queued"]
            per_cycle = (after["mem_total"] - before["mem_total"]) / cycles
            log(f"{cycles} metrics in {time.monotonic() - started:.0f} s; stopping")
            await sim.command("press stop")
            await sim.wait_status(lambda s: s["state"] == "idle" and s["outbox"] == 0)
            await sim.command("release stop")
            for i in range(5):
                await sim.command("link down")
                await sim.wait_status(lambda s: not s["link"])
                await sim.command("link up")
                await sim.wait_status(lambda s: s["link"])
                log(f"reconnect {i + 1}/5")
            await sim.command("press emergency")
            await sim.wait_status(lambda s: s["state"] == "fault")
            await sim.command("release emergency")
            await sim.command("press stop")
            await sim.wait_status(lambda s: s["state"] == "idle", timeout=30)
            await sim.command("release stop")
            log("emergency and reset done")
            end = await _mem(sim, collect=True)
            errors = sum("MemoryError" in line for line in sim.lines)
            return {
                "bench": "firmware_memory",
                "heapsize": heapsize,
                "metrics_cycles": cycles,
                "peak_heap_bytes": end["mem_peak"],
                "heap_after_bytes": end["gc_alloc"],
                "bytes_allocated_per_metrics_cycle": round(per_cycle),
                "memory_errors": errors,
                "heap_limit_ok": end["mem_peak"] <= 64 * 1024,
            }
        finally:
            if sim is not None:
                await sim.stop()
            await app.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200, help="metrics readings (1 s each)")
    parser.add_argument("--heapsize", default="96K", help="micropython -X heapsize")
    args = parser.parse_args(argv)
    if args.readings < 1:
        parser.error("--readings must be at least 1")
    result = asyncio.run(scenario(args.readings, args.heapsize))
    print(json.dumps(result))
    return 0 if result["memory_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

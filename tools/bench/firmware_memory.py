"""Firmware memory benchmark: the real firmware on the MicroPython unix port, scripted session.

    python -m tools.bench.firmware_memory [--readings 200] [--heapsize 512K] [--limit 96K]

Compiles the firmware as `make firmware` does (.mpy: the board never compiles source) and the
simulator shims, starts the real server (demo data plus a card for the emulated reader) on
127.0.0.1:0 and the firmware with emulated hardware, then runs: connect, tap, N metrics
readings (1 s apart), STOP, 5 link drops and reconnects, EMERGENCY, the reset gesture. A
second, short run (boot, connect, a session) checks the firmware runs under `--limit`.
`--readings 20` gives the same figures in about a minute (the peak is during reconnects).

Figures come from inside the MicroPython process (64-bit unix port; on 32 bits the resident
code measures 0.74 of it and objects half: docs/architecture.md, "Firmware heap on 32 bits"). How the heap is split between the simulator and the firmware (one process):

- the simulator's share is built first: tools/sim/run_charger.py imports the shims
  (`machine`, `network`: native on the board), reads the config with `json`, builds the
  emulated RC522 and PZEM-004T and the control object, drives the pins, then takes its
  baseline (gc.collect(), gc.mem_alloc()) before importing anything of the firmware;
- what the simulator creates later is measured where it is created (gc.collect() around
  it) and added to its share: the control task and its stdin stream, the heap sampler task,
  a card put on the reader, every command's live-heap change;
- everything else live is the firmware's: its modules (bytecode, functions, classes, the
  qstrs they intern, config.py's included; the simulator's status/mem code is loaded after
  them so that names both use count as the firmware's), `asyncio` (frozen on the board, but
  its module objects and queues live in RAM there too), its objects and tasks;
- allocations (not live bytes) the emulated chips make inside an SPI/UART call, and those of
  every control command, are booked to `machine.sim_alloc` and left out of the per-cycle
  figure.
- the control and sampler tasks run wrapped (control.booked): every allocation of their steps
  (reading stdin included) goes to `machine.sim_alloc` too; a command's live-heap change is
  measured after its answer's frame is gone (a coroutine frame's dead slots keep objects).
- the qstr pool grows in doubling chunks (a new one at 21, 61, 141, 301, 621 qstrs on this
  port): the simulator's ~150 qstrs fill the first chunks, so the firmware pays less pool here
  than alone on a board. `qstr_pool_correction_bytes` (measured on this interpreter: the
  arrays for the firmware's qstrs alone minus what it pays here) is added to its figures.
Not split: the interpreter's own start-up objects (~1 KB: sys.path, argv, __main__) count as
the simulator's; stdin's registration in asyncio's poller while the control task waits for a
command (one small list and a dict slot) and asyncio's work between task steps to wake it (the
bench sends one command per metrics cycle) count as the firmware's; the few short names both
intern (argument names such as `address`, `power`, `uid`; `crc16`) are paid by the simulator,
which loads first (less since its shims load as .mpy, not compiled at run time: their local
names are no longer interned, 13 of which the firmware now pays, +224 B).

One JSON line:

    peak_heap_bytes                   largest live heap of the firmware (sampled every 1 ms
                                      after a gc.collect(), from the end of the measured
                                      readings on, and at the end), modules' bytecode included;
                                      samples see the heap only where the firmware awaits
                                      (two runs differ by a few hundred bytes)
    heap_after_bytes                  live heap of the firmware after the scenario
    heap_at_start_bytes               live heap of the firmware once its tasks started: mostly
                                      the modules' bytecode (freezing them moves it to flash)
    bytes_allocated_per_metrics_cycle bytes the firmware allocates per metrics interval while
                                      charging (meter polls, card polls, buttons, LED, link)
    simulator_heap_bytes              the simulator's live share at the end (subtracted)
    simulator_baseline_bytes          its part measured before the firmware was imported
    peak_heap_with_simulator_bytes    the firmware's peak (measured) plus the simulator's share
    qstrs_simulator, qstrs_firmware   interned names each added to the pool
    qstr_pool_correction_bytes        pool arrays the firmware would need alone minus what it
                                      holds here (included in the three heap figures above)
    runs_under_limit                  the short run finished under -X heapsize=--limit
"""

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from server.app import App
from server.config import Config
from tools.firmware_build import build
from tools.firmware_paths import MICROPYTHON, MPY_CROSS, ROOT
from tools.sim_charger import SimCharger

CARD = "04A1B2C3D4E5F6"


def log(*args):
    print(*args, file=sys.stderr)


async def _mem(sim, collect=False):
    return json.loads(await sim.command("mem gc" if collect else "mem"))


_QSTR_LINE = re.compile(r"qstr pool: n_pool=\d+, n_qstr=(\d+)")

# interns one new attribute name per line and prints the pool's state after each
_POOL_PROBE = """
import micropython
class O: pass
o = O()
for i in range(%d):
    setattr(o, 'pool_probe_%%d' %% i, 1)
    micropython.qstr_info()
"""


def qstr_pool_bytes(limit: int = 1500) -> list[int]:
    """bytes[n]: the qstr pool arrays (not the strings) this interpreter holds with n dynamic
    qstrs. It grows in doubling chunks (on 1.29's unix port: a new pool at 21, 61, 141, 301,
    621 qstrs, 7.1 KB at once at 621), so who crosses a boundary pays a whole chunk."""
    out = subprocess.run(
        [str(MICROPYTHON), "-c", _POOL_PROBE % limit], capture_output=True, text=True, check=True
    ).stdout
    table = [0]
    for m in re.finditer(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", out):
        n, data, total = map(int, m.groups())
        while len(table) <= n:
            table.append(total - data)
    return table


def _qstrs(lines: list[str]) -> list[int]:
    """The qstr counts the simulator printed: at its baseline, before and after loading its
    report module in the start-up hook, then one per `mem qstr`."""
    return [int(m.group(1)) for line in lines if (m := _QSTR_LINE.match(line))]


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
            subprocess.run(
                [
                    str(MPY_CROSS),
                    "-O3",
                    "-s",
                    src.name,
                    "-o",
                    str(sim / (src.stem + ".mpy")),
                    str(src),
                ],
                check=True,
            )
    return [sim, firmware]


async def _server(tmp_path: Path) -> App:
    app = await App.start(
        Config(
            host="127.0.0.1", port=0, db_path=tmp_path / "b.sqlite3", demo=True, log_level="WARNING"
        )
    )
    user = (await app.storage.list_users())[0]
    await app.storage.add_card(CARD, user.id)
    return app


async def _readings(sim, count: int) -> dict:
    target = (await _mem(sim))["readings_queued"] + count
    while (await _mem(sim))["readings_queued"] < target:
        await asyncio.sleep(1.0)  # a benchmark pacing its polls, not a test sync
    return await _mem(sim)


async def _charge(sim, readings: int) -> tuple[dict, dict]:
    """Tap, wait for `readings` metrics, then 10 more with the live-heap sampler on (its own
    wake-ups would count as the firmware's allocations); the figures around the first part."""
    await sim.wait_status(lambda s: s["link"])
    await sim.command("tap " + CARD)
    await sim.wait_status(lambda s: s["state"] == "charging")
    await sim.wait_status(lambda s: s["readings_queued"] >= 3)
    before = await _mem(sim)
    after = await _readings(sim, readings)
    await sim.command("mem watch")
    await _readings(sim, 10)
    await sim.command("press stop")
    await sim.wait_status(lambda s: s["state"] == "idle" and s["outbox"] == 0)
    await sim.command("release stop")
    return before, after


async def measure(tmp_path: Path, dirs, readings: int, heapsize: str) -> dict:
    app = await _server(tmp_path)
    sim = SimCharger(
        tmp_path,
        f"ws://127.0.0.1:{app.port}/ws",
        token=app.demo_key,
        heapsize=heapsize,
        module_dirs=dirs,
    )
    try:
        await sim.start()
        before, after = await _charge(sim, readings)
        cycles = after["readings_queued"] - before["readings_queued"]
        firmware_bytes = (after["mem_total"] - before["mem_total"]) - (
            after["sim_alloc"] - before["sim_alloc"]
        )
        log(f"{cycles} metrics cycles measured; 5 reconnects")
        for _ in range(5):
            await sim.command("link down")
            await sim.wait_status(lambda s: not s["link"])
            await sim.command("link up")
            await sim.wait_status(lambda s: s["link"])
        await sim.command("press emergency")
        await sim.wait_status(lambda s: s["state"] == "fault")
        await sim.command("release emergency")
        await sim.command("press stop")
        await sim.wait_status(lambda s: s["state"] == "idle", timeout=30)
        await sim.command("release stop")
        log("emergency and reset done")
        end = await _mem(sim, collect=True)
        await sim.command("mem qstr")
        counts = _qstrs(sim.lines)
        sim_qstrs, all_qstrs = counts[0] + counts[2] - counts[1], counts[-1]
        pool = qstr_pool_bytes()
        # the pool arrays the firmware would hold alone, minus what it holds here (beside the
        # simulator's qstrs, which took the first chunks): added to the firmware's figures
        fix = pool[all_qstrs - sim_qstrs] - (pool[all_qstrs] - pool[sim_qstrs])
        return {
            "metrics_cycles": cycles,
            "peak_heap_bytes": max(end["live_peak"], end["firmware_heap"]) + fix,
            "heap_after_bytes": end["firmware_heap"] + fix,
            "heap_at_start_bytes": end["start_heap"] + fix,
            "bytes_allocated_per_metrics_cycle": round(firmware_bytes / cycles),
            "simulator_heap_bytes": end["sim_heap"],
            "simulator_baseline_bytes": end["sim_baseline"],
            "peak_heap_with_simulator_bytes": (
                max(end["live_peak"], end["firmware_heap"]) + end["sim_heap"]
            ),
            "qstrs_simulator": sim_qstrs,
            "qstrs_firmware": all_qstrs - sim_qstrs,
            "qstr_pool_correction_bytes": fix,
            "memory_errors": sum("MemoryError" in line for line in sim.lines),
        }
    finally:
        await sim.stop()
        await app.stop()


async def limit_check(tmp_path: Path, dirs, heapsize: str) -> dict:
    """Boot, connect, one short session under `-X heapsize`: does it run at all?"""
    app = await _server(tmp_path)
    sim = SimCharger(
        tmp_path,
        f"ws://127.0.0.1:{app.port}/ws",
        token=app.demo_key,
        heapsize=heapsize,
        module_dirs=dirs,
    )
    try:
        await sim.start()
        await _charge(sim, 3)
        ok, error = True, ""
    except (AssertionError, TimeoutError) as e:
        ok, error = False, str(e).strip().splitlines()[-1][:200]
    finally:
        await sim.stop()
        await app.stop()
    if any("MemoryError" in line for line in sim.lines):
        ok = False
        error = next(line for line in sim.lines if "MemoryError" in line)[:200]
    return {"limit_heapsize": heapsize, "runs_under_limit": ok, "limit_error": error}


async def scenario(readings: int, heapsize: str, limit: str) -> dict:
    # a path of fixed length: module paths are interned (__file__) and the heap's layout moves
    # with them; at 6ea56e5 a 2-character longer config path kept 3.5 KB more alive at start
    # (a stale pointer to a forgotten module, likely): the figures must not depend on $TMPDIR
    with tempfile.TemporaryDirectory(prefix="fw-bench-", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        with contextlib.redirect_stdout(sys.stderr):
            dirs = compile_modules(tmp_path)
        result = {"bench": "firmware_memory", "heapsize": heapsize}
        (tmp_path / "m").mkdir()
        result.update(await measure(tmp_path / "m", dirs, readings, heapsize))
        (tmp_path / "l").mkdir()
        result.update(await limit_check(tmp_path / "l", dirs, limit))
        result["peak_heap_target_ok"] = result["peak_heap_bytes"] <= 64 * 1024
        return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200, help="metrics readings (1 s each)")
    parser.add_argument("--heapsize", default="512K", help="heap for the measured run")
    parser.add_argument("--limit", default="96K", help="heap for the does-it-run check")
    args = parser.parse_args(argv)
    if args.readings < 1:
        parser.error("--readings must be at least 1")
    result = asyncio.run(scenario(args.readings, args.heapsize, args.limit))
    print(json.dumps(result))
    return 0 if result["memory_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""What start-up leaves in the firmware's heap does not depend on accidents of the C stack.

The firmware unloads its start-up-only modules (config, board, linkcfg: `charger.forget`).
MicroPython's GC is conservative: a stale copy of a pointer left in a C stack word keeps a
dropped module's code alive. Before main.py ran start-up on a thread of its own, one such
word kept config.py alive (+3.4 KB) for some lengths of the config file's path and not for
others. The real firmware, built as the board gets it, boots on the MicroPython unix port
from config files at paths of 40 consecutive lengths; its heap at start (the simulator's
`start_heap`: the firmware's live heap once its tasks exist) must be the same for all of
them, up to the path string itself (a few 32-byte GC blocks).
"""

import json

import pytest

from tests.firmware.mpy import requires_micropython
from tests.live_server import base_url, token_for
from tools.bench.firmware_memory import compile_modules
from tools.sim_charger import SimCharger

pytestmark = [requires_micropython, pytest.mark.timeout(300)]

_LENGTHS = 40  # the retained module showed up in windows of 2-11 lengths, ~35 apart
_SPREAD = 1024  # less than any unloaded module (config 3.4 KB, linkcfg 3.4 KB)


async def test_heap_at_start_does_not_depend_on_the_config_files_path_length(live_app, tmp_path):
    dirs = compile_modules(tmp_path)
    url = base_url(live_app) + "/ws"
    token = token_for(base_url(live_app), "publisher", 1)
    heap_at_start = {}
    for n in range(1, _LENGTHS + 1):
        where = tmp_path / "cfg" / ("x" * n)
        where.mkdir(parents=True)
        sim = SimCharger(where, url, token=token, heapsize="512K", module_dirs=dirs)
        try:
            await sim.start()
            figures = json.loads(await sim.command("mem gc"))
        finally:
            await sim.stop()
        heap_at_start[len(str(sim.config_path))] = figures["start_heap"]
    spread = max(heap_at_start.values()) - min(heap_at_start.values())
    assert spread < _SPREAD, "heap at start by config path length: %s" % heap_at_start

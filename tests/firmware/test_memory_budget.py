"""Memory regression guard: each firmware module's resident heap against a budget.

The firmware is built as the board gets it (.mpy, -O3) and every module of the `charger`
package is imported into a fresh MicroPython unix-port process (tools/firmware_resident.py):
its resident heap (code, functions, classes, module dict, constants, its qstrs counted
smoothly) must stay within `BUDGET`, and so must the resident set (every module loaded while
charging). Heap figures on the unix port are deterministic: the same build gives the same
bytes on every run and machine, so this is a measurement, not a timing.

The budgets are bytes on the 64-bit unix port (the ESP32 needs roughly half): the figure
measured at the end of issue 3's memory round plus about 3 %. A module that grows past its line
fails here; lower a line when a module shrinks. A new module needs its line here.
"""

import pytest

from tests.firmware.mpy import requires_micropython
from tools.firmware_build import build
from tools.firmware_resident import RESIDENT, measure

BUDGET = {  # bytes; the comment: measured at the end of the memory round (before it: 6689ca1)
    "charger.app": 4480,  # 4326 (app 8,722 + clock 888 before)
    "charger.board": 1344,  # 1287 (unloaded after boot)
    "charger.config": 4480,  # 4353 (unloaded after boot)
    "charger.gpio": 2976,  # 2876 (relay + buttons + led: 4,900 before)
    "charger.link": 3664,  # 3382; 3543 with acknowledged delivery (issue 10: ack, its timeout)
    "charger.linkcfg": 3632,  # 3397; 3525 with ack_timeout_s (unloaded after start-up)
    "charger.messages": 2288,  # 2128; 2224 with a stop's `reason` (R3: meter failure alert)
    "charger.mfrc522": 2592,  # 2512
    "charger.outbox": 3328,  # 2930; 3229 with the fault stops' kinds (R3: their 2 words)
    "charger.pzem": 1888,  # 1808 (with the Modbus CRC)
    "charger.state": 3520,  # 3400
    "charger.wsclient": 6368,  # 5902; 6169 with issue 10 (no confirm ping, the compact ack read)
    "charger.wsopen": 2784,  # 2692 (loaded for each connect)
    RESIDENT: 31104,  # 29097; 29674 before issue 10, 30176 with acknowledged delivery
}


@pytest.fixture(scope="module")
def resident(tmp_path_factory):
    out = tmp_path_factory.mktemp("firmware") / "build"
    assert build(out, quiet=True) == 0, "the firmware does not compile"
    return measure(out)


@requires_micropython
def test_every_firmware_module_has_a_memory_budget(resident):
    missing = {name: size for name, size in resident.items() if name not in BUDGET}
    assert not missing, ("no memory budget for %s (resident bytes on the unix port): add a "
                         "line to BUDGET in tests/firmware/test_memory_budget.py" % missing)


@requires_micropython
@pytest.mark.parametrize("module", sorted(BUDGET))
def test_module_resident_heap_stays_within_its_budget(resident, module):
    if module not in resident:
        pytest.skip("%s is gone from firmware/charger" % module)
    assert resident[module] <= BUDGET[module], (
        "%s: %d B resident on the 64-bit unix port, budget %d B (+%d B)"
        % (module, resident[module], BUDGET[module], resident[module] - BUDGET[module]))

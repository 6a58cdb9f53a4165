"""Memory regression guard: each firmware module's resident heap against a budget.

The firmware is built as the board gets it (.mpy, -O3) and every module of the `charger`
package is imported into a fresh MicroPython unix-port process (tools/firmware_resident.py):
its resident heap (code, functions, classes, module dict, constants, its qstrs counted
smoothly) must stay within `BUDGET`, and so must the resident set (every module loaded while
charging). Heap figures on the unix port are deterministic: the same build gives the same
bytes on every run and machine, so this is a measurement, not a timing.

The budgets are bytes on the 64-bit unix port (the ESP32 needs roughly half), set to the
figure measured at HEAD 13fa23f plus about 5 %: modules are being shrunk in this round, the
lead tightens the table at the end. A new module needs its line here.
"""

import pytest

from tests.firmware.mpy import requires_micropython
from tools.firmware_build import build
from tools.firmware_resident import RESIDENT, measure

BUDGET = {  # bytes; the comment: measured at 13fa23f
    "charger.app": 6080,  # 5766
    "charger.board": 1376,  # 1287
    "charger.config": 4960,  # 4712
    "charger.gpio": 3072,  # 2908
    "charger.led": 352,  # 321
    "charger.link": 3552,  # 3361
    "charger.linkcfg": 3584,  # 3397
    "charger.messages": 2400,  # 2256
    "charger.mfrc522": 2656,  # 2512
    "charger.outbox": 3136,  # 2963
    "charger.pzem": 1824,  # 1712
    "charger.state": 3904,  # 3701
    "charger.wsclient": 5952,  # 5656
    "charger.wsopen": 2752,  # 2596
    RESIDENT: 32768,  # 31180
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

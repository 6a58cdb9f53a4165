"""Memory regression guard: each firmware module's resident heap against a budget, 64 and 32 bits.

The firmware is built as the board gets it (.mpy, -O3) and every module of the `charger`
package is imported into a fresh MicroPython unix-port process (tools/firmware_resident.py):
its resident heap (code, functions, classes, module dict, constants, its qstrs counted
smoothly) must stay within `BUDGET`, and so must the resident set (every module loaded while
charging). The same built files, measured the same way on the 32-bit WebAssembly port
(tools/firmware_resident32.py; an ESP32 needs about as much), must stay within `BUDGET32`.
Heap figures on both ports are deterministic: the same build gives the same bytes on every
run and machine, so this is a measurement, not a timing.

`BUDGET` is bytes on the 64-bit unix port: the figure measured at the end of issue 3's memory
round plus about 3 %. `BUDGET32` is bytes on the 32-bit port: the figure measured when it was
added (issue 15) plus about 3 %, rounded up to 16 B. The 32-bit figures are about 0.74 of the
64-bit ones (not half: objects halve, bytecode and strings do not). A module that
grows past its line fails here; lower a line when a module shrinks. A new module needs its
line in both. Without the 32-bit port (`npm ci` in tools/wasm; `make test` runs it) the 32-bit
tests fail and say so.
"""

import pytest

from tests.firmware.mpy import requires_micropython
from tools import firmware_resident32, wasm32
from tools.firmware_build import build
from tools.firmware_resident import RESIDENT, measure

BUDGET = {  # bytes; the comment: measured at the end of the memory round (before it: 6689ca1)
    "charger.app": 4688,  # 4326 (app 8,722 + clock 888 before); 4541 with the journal and OTA (issue 13);
    # 4829 with offline starts too (issue 13, merged); 4732 -> 4544 with App.__init__'s work
    # in charger/startup.py, offline.py reached through on_message
    "charger.board": 1344,  # 1287 (unloaded after boot)
    "charger.config": 4544,  # 4353; 4492 with server_urls (issue 14; unloaded after boot)
    "charger.gpio": 2976,  # 2876 (relay + buttons + led: 4,900 before)
    "charger.jboot": 1696,  # 1495 (the journal's compaction and boot replay, out of jfile);
    # 1452 -> 1644 with the register read from the readings (issue 13, s19: +64 B of code, the
    # rest where jfile's new layout leaves the qstr and dict tables; unloaded after boot)
    "charger.jfile": 1568,  # 2531 (issue 13: loaded per write and at boot); 1271 per write only;
    # 1260 -> 1516 with the payload built once and the records written in pieces (s19): loaded
    # per write, and a 10-reading write then needs 4,720 -> 4,048 B free heap in all
    # (tools/bench/journal_flash.py write_heap_needed_bytes: it allocates 8.5 -> 2.4 KB)
    "charger.link": 3664,  # 3382; 3543 with acknowledged delivery (issue 10: ack, its timeout)
    "charger.linkcfg": 3632,  # 3397; 3525 with ack_timeout_s (unloaded after start-up)
    "charger.messages": 2288,  # 2128; 2224 with a stop's `reason` (R3: meter failure alert)
    "charger.mfrc522": 2592,  # 2512
    "charger.offline": 3568,  # 3299 (issue 13: loaded for an offline tap, a list, an answer);
    # 3459 with the offline_start's message head (moved out of the resident outbox)
    "charger.ota": 2560,  # 4613 (issue 13: loaded to install an update, then unloaded); 2543
    # once its steps moved to otaget and otaput (loaded in turn, never together)
    "charger.otaget": 1664,  # 1474 (the update's download and hash, loaded for it)
    "charger.otaput": 2864,  # 2781 (the update's check, unpack, switch, the outbox's rings)
    "charger.otatrial": 2096,  # 2035 (issue 13: loaded after a boot with an update, then unloaded)
    "charger.outbox": 4576,  # 2930; 3229 with the fault stops' kinds (R3: their 2 words);
    # 2973 -> 4275 with the Journal class (issue 13: the session journal's resident part);
    # 4499 with offline starts too (the held local entries, the offline_start event); 4435
    # with the offline_start's head built by charger/offline.py
    "charger.pzem": 1888,  # 1808 (with the Modbus CRC)
    "charger.startup": 2064,  # 1990 (issue 13: main.py's start-up and App.__init__'s work,
    # loaded at boot, then unloaded)
    "charger.state": 3520,  # 3400
    "charger.wsclient": 6640,  # 5902; 6169 with issue 10 (no confirm ping, the compact ack read);
    # 6295-6434 (by the build's path) with the opening's timeout task and its two halves in
    # turn (issue 13: the reconnect's heap peak -2 KB)
    "charger.wsaccept": 1808,  # 1613-1741 (by the build's path: where the qstr text chunk
    # ends; issue 13: the opening's answer check, loaded after wsopen is dropped)
    "charger.wsopen": 1584,  # 2692 (loaded for each connect); 1400-1528 once the answer's
    # check moved to wsaccept (issue 13: the reconnect's heap peak holds one half, not both)
    RESIDENT: 32256,  # 29097; 29674 before issue 10, 30176 with acknowledged delivery;
    # 29952 -> 31424 with the session journal (issue 13: outbox +1302, app +128); 31979 with
    # offline starts too (32101 at the merge, 430ca6d); 31642 with charger/startup.py
}

BUDGET32 = {  # bytes on the 32-bit WebAssembly port; the comment: measured when added (issue 15)
    "charger.app": 4064,  # 3653; 3724 before issue 13 -> 3852 with the journal (the server's stop), 4088 with OTA too (the order, the boot check);
    # 4168 with offline starts too (issue 13, merged); 4154 -> 3934 with charger/startup.py
    "charger.board": 992,  # 954 (unloaded after boot)
    "charger.config": 3408,  # 3219; 3395 with server_urls (issue 14; unloaded after boot)
    "charger.gpio": 2032,  # 1971
    "charger.jboot": 1616,  # 1498 (the journal's compaction and boot replay, out of jfile);
    # 1491 -> 1555 with the register read from the readings (s19)
    "charger.jfile": 1424,  # 2207 (issue 13; loaded per journal write and at boot); 1187;
    # 1180 -> 1379 with the payload built once, the records in pieces (s19: less heap per write)
    "charger.link": 3088,  # 2968; 2826 with the final ack link (issue 10); 2915 with server_urls, the answering server first (issue 14)
    # 2988 with its code unchanged, when wsclient's new names (issue 13) moved the qstr pool's share
    "charger.linkcfg": 2608,  # 2528 (unloaded after start-up)
    "charger.messages": 1728,  # 1673
    "charger.mfrc522": 2048,  # 1977
    "charger.offline": 3072,  # 2952 (issue 13, loaded on demand); 2977 with the message head
    "charger.ota": 1952,  # 3752 (issue 13: loaded to install an update, then unloaded); 1929 split
    "charger.otaget": 1488,  # 1422 (the update's download and hash, loaded for it)
    "charger.otaput": 2176,  # 2108 (the update's check, unpack, switch, the outbox's rings)
    "charger.otatrial": 1632,  # 1576 (issue 13: loaded after a boot with an update, then unloaded)
    "charger.outbox": 3360,  # 2227 -> 3169 with the Journal class (issue 13); 3329 with
    # offline starts too; 3256 with the offline_start's head built by charger/offline.py
    "charger.pzem": 1424,  # 1376
    "charger.startup": 1776,  # 1717 (issue 13: main.py's start-up and App.__init__'s work,
    # loaded at boot, then unloaded)
    "charger.state": 2528,  # 2440
    "charger.wsclient": 5456,  # 4658; 5024 with the ack read in place (issue 10); 5293 with
    # the opening's timeout task and its two halves in turn (issue 13: the reconnect's peak
    # -2 KB; its new names also move the qstr pool's chunk share, +245 B here, +86 B on 64)
    "charger.wsaccept": 1392,  # 1336 (issue 13: the opening's answer check, after wsopen)
    "charger.wsopen": 1472,  # 2237 (loaded for each connect); 1418 without the answer's check
    RESIDENT: 23856,  # 21977 (64-bit: 29,696); 22233 with acknowledged delivery (64-bit: 29,952);
    # 22281 -> 23072 with the session journal (issue 13); 23415 with offline starts too
    # (64-bit: 31,979); 23662 at the merge (430ca6d) -> 23351 with charger/startup.py
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("firmware") / "build"
    assert build(out, quiet=True) == 0, "the firmware does not compile"
    return out


@pytest.fixture(scope="module")
def resident(built):
    return measure(built)


@pytest.fixture(scope="module")
def resident32(built):
    why = wasm32.missing()
    assert why is None, why
    return firmware_resident32.measure(built)


@requires_micropython
def test_every_firmware_module_has_a_memory_budget(resident):
    missing = {name: size for name, size in resident.items() if name not in BUDGET}
    assert not missing, (
        "no memory budget for %s (resident bytes on the unix port): add a "
        "line to BUDGET in tests/firmware/test_memory_budget.py" % missing
    )


@requires_micropython
@pytest.mark.parametrize("module", sorted(BUDGET))
def test_module_resident_heap_stays_within_its_budget(resident, module):
    if module not in resident:
        pytest.skip("%s is gone from firmware/charger" % module)
    assert resident[module] <= BUDGET[module], (
        "%s: %d B resident on the 64-bit unix port, budget %d B (+%d B)"
        % (module, resident[module], BUDGET[module], resident[module] - BUDGET[module])
    )


def test_every_firmware_module_has_a_32_bit_memory_budget(resident32):
    missing = {name: size for name, size in resident32.items() if name not in BUDGET32}
    assert not missing, (
        "no 32-bit memory budget for %s (resident bytes on the WebAssembly "
        "port): add a line to BUDGET32 in tests/firmware/test_memory_budget.py" % missing
    )


@pytest.mark.parametrize("module", sorted(BUDGET32))
def test_module_resident_heap_stays_within_its_32_bit_budget(resident32, module):
    if module not in resident32:
        pytest.skip("%s is gone from firmware/charger" % module)
    assert resident32[module] <= BUDGET32[module], (
        "%s: %d B resident on the 32-bit WebAssembly port, budget %d B (+%d B)"
        % (module, resident32[module], BUDGET32[module], resident32[module] - BUDGET32[module])
    )

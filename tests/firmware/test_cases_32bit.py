"""The firmware's case files on a 32-bit MicroPython too: the WebAssembly port (wasm32).

The same shared cases as on the 64-bit unix port (tests/firmware/cases/*.py): the pure
modules (state, messages, outbox, config), the RC522 and PZEM-004T drivers against their
bus-level emulators, relay/buttons/LED on simulated pins and the app's poll pass on the
emulated board: the same source on a second port and word size (31-bit small ints, 4-byte
pointers, 16-byte GC blocks). One Node process runs every case module, each in a fresh
interpreter (tests/firmware/mpy.py: `wasm32_case_results`).

Left to the unix port, named in `UNIX_ONLY` with the reason: cases that count allocated bytes
with `micropython.mem_total()` (the WebAssembly build has no memory statistics; the shims book
the emulators' allocations with it too), the one that replaces `asyncio.run` (that port's
asyncio runs on Node's event loop and has none), and in `VACUOUS_HERE` the one that returns
early without `mem_total` (it would pass having checked nothing). Without the port (`npm ci` in tools/wasm;
`make test` installs it) these tests fail with the command to run, they never skip.
"""

import pytest

from tests.firmware.mpy import ROOT, case_names_in, wasm32_case_results

CASES = ROOT / "tests" / "firmware" / "cases"
MODULES = [
    "state_cases",
    "messages_cases",
    "outbox_cases",
    "config_cases",
    "driver_cases",
    "hardware_cases",
    "app_cases",
]
_MEM_TOTAL = "counts allocated bytes with micropython.mem_total(): no memory statistics here"
UNIX_ONLY = {
    "driver_cases.case_polling_for_a_card_allocates_nothing_while_none_is_there": _MEM_TOTAL,
    "driver_cases.case_polling_the_meter_allocates_only_the_three_floats_it_reports": _MEM_TOTAL,
    "hardware_cases.case_button_polls_and_led_steps_allocate_nothing": _MEM_TOTAL,
    "hardware_cases.case_relay_off_allocates_nothing_for_the_emergency_interrupt": _MEM_TOTAL,
    "app_cases.case_a_poll_pass_with_nothing_to_do_allocates_nothing": _MEM_TOTAL,
    "app_cases.case_state_machine_hot_path_allocates_nothing": _MEM_TOTAL,
    "app_cases.case_main_with_a_bad_config_shows_the_fault_pattern_instead_of_crashing": "replaces asyncio.run, which this port's asyncio (Node's event loop) does not have",
    "app_cases.case_main_whose_start_up_fails_to_load_shows_the_fault_pattern_instead_of_crashing": "replaces asyncio.run, which this port's asyncio (Node's event loop) does not have",
}
# cases that return early without micropython.mem_total (for CPython): they would pass here
# having checked nothing
VACUOUS_HERE = {
    "outbox_cases.case_queuing_a_reading_allocates_nothing_even_when_the_outbox_is_full"
}
ALL = ["%s.%s" % (m, c) for m in MODULES for c in case_names_in(CASES / (m + ".py"))]
PARAMS = [name for name in ALL if name not in UNIX_ONLY and name not in VACUOUS_HERE]


@pytest.mark.parametrize("name", PARAMS)
def test_case_on_the_32_bit_port(name):
    module, case = name.split(".")
    results = wasm32_case_results(MODULES)[module]
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]


def test_every_case_left_to_the_unix_port_exists_and_needs_what_this_port_lacks():
    stale = sorted((set(UNIX_ONLY) | VACUOUS_HERE) - set(ALL))
    assert not stale, "UNIX_ONLY names cases that are gone: %s" % stale
    for name in UNIX_ONLY:
        module, case = name.split(".")
        results = wasm32_case_results(MODULES)[module]
        assert results[case].startswith("FAIL"), (
            "%s passes on the 32-bit port now: take it out of UNIX_ONLY" % name
        )
        assert "mem_total" in results[case] or "'run'" in results[case], results[case]

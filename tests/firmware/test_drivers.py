"""RC522 and PZEM-004T drivers against the bus-level emulators, on the MicroPython unix port."""


import pytest

from tests.firmware.mpy import ROOT, mpy_case_results, requires_micropython

CASES = ROOT / "tests" / "firmware" / "cases" / "driver_cases.py"


def _case_names():
    # parse names without importing (the module needs the emulated `machine`)
    names = []
    for line in CASES.read_text().splitlines():
        if line.startswith("def case_"):
            names.append(line[4:line.index("(")])
    return names


@requires_micropython
@pytest.mark.parametrize("case", _case_names())
def test_driver_case(case):
    results = mpy_case_results(CASES)
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]

"""RC522 and PZEM-004T drivers against the bus-level emulators, on the MicroPython unix port."""

import pytest

from tests.firmware.mpy import ROOT, case_names_in, mpy_case_results, requires_micropython

CASES = ROOT / "tests" / "firmware" / "cases" / "driver_cases.py"


@requires_micropython
@pytest.mark.parametrize("case", case_names_in(CASES))
def test_driver_case(case):
    results = mpy_case_results(CASES)
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]

"""The pure firmware modules behave the same under CPython and on the MicroPython unix port."""

import importlib.util

import pytest

from tests.firmware.mpy import case_names, mpy_case_results, requires_micropython, ROOT

CASES = ROOT / "tests" / "firmware" / "cases"
MODULES = ["state_cases", "messages_cases"]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, CASES / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PARAMS = [(m, c) for m in MODULES for c in case_names(_load(m))]
IDS = ["%s.%s" % p for p in PARAMS]


@pytest.mark.parametrize("module,case", PARAMS, ids=IDS)
def test_case_under_cpython(module, case):
    getattr(_load(module), case)()


@requires_micropython
@pytest.mark.parametrize("module,case", PARAMS, ids=IDS)
def test_case_under_micropython(module, case):
    results = mpy_case_results(CASES / (module + ".py"))
    line = results.get(case)
    assert line is not None, results["__output__"]
    assert line.startswith("PASS"), results["__output__"]

"""The pure firmware modules behave the same under CPython and on the MicroPython unix port."""

import ast
import importlib.util

import pytest

from tests.firmware.mpy import ROOT, case_names, mpy_case_results, requires_micropython

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


def _consts(module="app"):
    """charger/<module>.py's private `const()`s, evaluated (a const is no module attribute
    under MicroPython: modules that share one each spell it)."""
    tree = ast.parse((ROOT / "firmware" / "charger" / f"{module}.py").read_text())
    values = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "const"
        ):
            expr = ast.Expression(node.value.args[0])
            values[node.targets[0].id] = eval(
                compile(expr, f"{module}.py", "eval"), {}, dict(values)
            )
    return values, tree


def test_the_app_tests_the_state_machines_action_bits_by_their_names():
    from charger import state

    values, tree = _consts()
    shared = {name: value for name, value in values.items() if name.startswith(("_A_", "_LED_"))}
    assert {name for name in shared if hasattr(state, name)} >= {
        "_A_RELAY_OFF",
        "_A_RELAY_ON",
        "_A_FINAL_READING",
        "_A_LED",
        "_A_SEND_SCAN",
        "_A_QUEUE_READING",
        "_A_QUEUE_STOP",
        "_A_QUEUE_EMERGENCY",
        "_A_SEND_STATUS",
        "_A_LOG",
        "_A_FLASH_ERROR",
        "_A_STOP_REASON",
        "_LED_ERROR",
    }
    for name, value in shared.items():
        if hasattr(state, name):
            assert value == getattr(state, name), name
    assert (
        shared["_A_QUEUE_ANY"]
        == state._A_QUEUE_READING | state._A_QUEUE_STOP | state._A_QUEUE_EMERGENCY
    )
    assert shared["_A_QUEUE_EVENT"] == state._A_QUEUE_STOP | state._A_QUEUE_EMERGENCY
    # no action bit or LED pattern spelled as a bare number
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
            assert not isinstance(node.right, ast.Constant), ast.unparse(node)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "show":
            assert not any(isinstance(arg, ast.Constant) for arg in node.args), ast.unparse(node)


def test_the_journals_write_and_boot_halves_agree_on_its_record_kinds_and_limits():
    """jfile.py writes the journal and jboot.py reads it back at boot: one format."""
    written, _ = _consts("jfile")
    read, _ = _consts("jboot")
    assert {"_OPEN", "_READINGS", "_EVENT", "_END", "_ACK", "_LIMIT", "_NONE"} <= set(written)
    assert {name: read[name] for name in written} == written

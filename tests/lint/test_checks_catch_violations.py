"""`make lint`'s tools fail on a deliberate violation, naming it.

Each test copies the tree's Python files and pyproject.toml to a temporary directory, injects
one violation and runs the tool as `make lint` does, asserting a non-zero exit whose output
names the violation; the same tool passes on a clean copy (mypy and the import contracts on
the tree's own copy, ruff on a clean twin of the probe file). Nothing in the real tree changes.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTS = ("server", "tools", "tests", "firmware")


def _tool(name):
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (make venv installs it)")
    return str(path)


@pytest.fixture
def tree(tmp_path):
    """A copy of the tree's Python sources and pyproject.toml."""
    ignore = shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc", "*.mpy", ".*")
    for part in PARTS:
        shutil.copytree(ROOT / part, tmp_path / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def run(tree, *argv, env_path=None):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tree)}
    if env_path:
        env["PYTHONPATH"] = env_path
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def inject(path, text, after=None):
    """Append `text` to the module, or put it right after the line `after`."""
    source = path.read_text(encoding="utf-8")
    if after is None:
        path.write_text(source + text, encoding="utf-8")
    else:
        assert after in source, f"{after!r} not in {path}"
        path.write_text(source.replace(after, after + text, 1), encoding="utf-8")


def lint_imports(tree):
    return run(tree, _tool("lint-imports"), "--no-cache", env_path="firmware")


# --- import-linter ----------------------------------------------------------------------------
def test_lint_imports_keeps_every_contract_of_the_tree_as_it_is(tree):
    status, output = lint_imports(tree)
    assert status == 0 and "0 broken" in output, output


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"),
    [
        (
            "server/core.py",
            "import websockets\n",
            "The session core",
            "server.core is not allowed to import websockets",
        ),
        (
            "server/energy.py",
            "from server.storage import Storage\n",
            "The session core",
            "server.energy is not allowed to import server.storage",
        ),
        (
            "server/storage/demo.py",
            "from server.auth import decode_token\n",
            "The storage",
            "server.storage is not allowed to import server.auth",
        ),
        (
            "server/ocpp.py",
            "from server import core\n",
            "The OCPP adapter",
            "server.ocpp is not allowed to import server.core",
        ),
        (
            "firmware/charger/link.py",
            "import tools.fakeserver\n",
            "The firmware imports nothing",
            "charger is not allowed to import tools",
        ),
        (
            "firmware/charger/state.py",
            "from charger import link\n",
            "The charger state machine",
            "charger.state is not allowed to import charger.link",
        ),
        (
            "firmware/charger/state.py",
            "import machine\n",
            "The charger state machine",
            "charger.state is not allowed to import machine",
        ),
    ],
)
def test_lint_imports_fails_on_a_broken_layering_contract(tree, module, line, contract, named):
    inject(tree / module, line)
    status, output = lint_imports(tree)
    assert status != 0
    broken = output.split("Broken contracts", 1)[-1]
    assert contract in broken and named in broken, output


# --- mypy -----------------------------------------------------------------------------------
def test_mypy_fails_on_a_type_error_in_the_core(tree):
    mypy = _tool("mypy")
    status, output = run(tree, mypy, "--no-incremental")
    assert status == 0, output
    inject(
        tree / "server/core.py",
        "\n\ndef _probe(station: StationState) -> int:\n    return station.name\n",
    )
    status, output = run(tree, mypy, "--no-incremental")
    assert status != 0
    assert "server/core.py" in output and "[return-value]" in output, output


def test_mypy_fails_on_an_untyped_function_in_a_pure_module(tree):
    mypy = _tool("mypy")
    inject(tree / "server/energy.py", "\n\ndef _probe(kwh):\n    return kwh\n")
    status, output = run(tree, mypy, "--no-incremental")
    assert status != 0
    assert "server/energy.py" in output and "[no-untyped-def]" in output, output


# --- ruff -----------------------------------------------------------------------------------
CLEAN_SERVER = '"""A probe module."""\n\nimport json\n\n\ndef dumps(value: object) -> str:\n    return json.dumps(value)\n'


CLEAN_FIRMWARE = 'D = {"k": 1}\nTEXT = "%s" % D["k"]\n'


@pytest.mark.parametrize(
    ("path", "clean", "violation", "code"),
    [
        # an unused import
        (
            "server/probe.py",
            CLEAN_SERVER,
            CLEAN_SERVER.replace("import json\n", "import json\nimport os\n"),
            "F401",
        ),
        # a local variable assigned and never used
        (
            "server/probe.py",
            CLEAN_SERVER,
            CLEAN_SERVER.replace("    return", "    text = str(value)\n    return"),
            "F841",
        ),
        # a loop variable the lambda made in the loop does not bind
        (
            "server/probe.py",
            CLEAN_SERVER,
            CLEAN_SERVER + "\n\nCALLS = [lambda: n for n in range(3)]\n",
            "B023",
        ),
        # an f-string reusing its outer quotes: newer syntax than the firmware's target
        (
            "firmware/charger/probe.py",
            CLEAN_FIRMWARE,
            'D = {"k": 1}\nTEXT = f"{D["k"]}"\n',
            "invalid-syntax",
        ),
    ],
)
def test_ruff_check_fails_on_a_lint_error(tree, path, clean, violation, code):
    ruff = _tool("ruff")
    (tree / path).write_text(clean, encoding="utf-8")
    status, output = run(tree, ruff, "check", path)
    assert status == 0, output
    (tree / path).write_text(violation, encoding="utf-8")
    status, output = run(tree, ruff, "check", "--output-format", "concise", path)
    assert status != 0
    assert f"{path}:" in output and code in output, output


def test_ruff_keeps_micropython_code_off_newer_python(tree):
    """The server's `except asyncio.TimeoutError` is reported (it is TimeoutError in 3.11); the
    firmware's is not: on MicroPython asyncio.TimeoutError is a class of its own."""
    ruff = _tool("ruff")
    source = "import asyncio\n\n\nasync def wait(event):\n    try:\n        await asyncio.wait_for(event.wait(), 1)\n    except asyncio.TimeoutError:\n        pass\n"
    for path in ("server/probe.py", "firmware/charger/probe.py"):
        (tree / path).write_text(source, encoding="utf-8")
    status, output = run(tree, ruff, "check", "--output-format", "concise", "server/probe.py")
    assert status != 0 and "UP041" in output, output
    status, output = run(
        tree, ruff, "check", "--output-format", "concise", "firmware/charger/probe.py"
    )
    assert status == 0, output


def test_ruff_format_check_fails_on_an_unformatted_file(tree):
    ruff = _tool("ruff")
    path = tree / "server/probe.py"
    path.write_text(CLEAN_SERVER, encoding="utf-8")
    status, output = run(tree, ruff, "format", "--check", "server/probe.py")
    assert status == 0, output
    path.write_text(
        CLEAN_SERVER.replace("json.dumps(value)", "json.dumps( value )"), encoding="utf-8"
    )
    status, output = run(tree, ruff, "format", "--check", "server/probe.py")
    assert status != 0 and "server/probe.py" in output, output

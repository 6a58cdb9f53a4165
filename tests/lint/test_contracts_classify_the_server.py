"""Every server module is on one side of the core's layering contract.

The contract "core-pure" (pyproject.toml, checked by lint-imports) lists the pure session
core's modules and, as forbidden to them, every other server module by name. A module added
later and listed on neither side would be importable by the core unnoticed: this test names it,
so that whoever adds it decides which side it is on.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def core_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c.get("id") == "core-pure"]
    return contract


def server_modules():
    """server's direct children: modules (server/x.py) and packages (server/x/__init__.py)."""
    server = ROOT / "server"
    modules = {f"server.{path.stem}" for path in server.glob("*.py") if path.stem != "__init__"}
    packages = {f"server.{path.parent.name}" for path in server.glob("*/__init__.py")}
    return modules | packages


def unclassified(modules, contract):
    sides = set(contract["source_modules"]) | set(contract["forbidden_modules"])
    return sorted(module for module in modules if module not in sides)


def test_every_server_module_is_core_or_forbidden_to_the_core():
    missing = unclassified(server_modules(), core_contract())
    assert missing == [], (
        f"{', '.join(missing)}: in neither source_modules nor forbidden_modules of the contract "
        "core-pure in pyproject.toml; add each to one of them"
    )


def test_a_new_module_is_named():
    contract = core_contract()
    assert unclassified(server_modules() | {"server.newthing"}, contract) == ["server.newthing"]
    # a pattern for a part not written yet does not stand for the part once it exists
    assert unclassified(
        {"server.cluster"}, {**contract, "forbidden_modules": ["server.cluster.**"]}
    ) == ["server.cluster"]

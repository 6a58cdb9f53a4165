"""firmware/boot.py and firmware/main.py import nothing from the server, the tools or the tests.

import-linter checks the firmware's `charger` package (pyproject.toml, contract
"firmware-alone"), but it takes only packages: the two files the board runs first are single
modules, so their imports (at any depth: main.py imports inside functions) are read here.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("server", "tools", "tests")


def forbidden_imports(source: str) -> list[str]:
    """The `module (line N)` of every import of a forbidden top-level package in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{name} (line {node.lineno})" for name in names if name.split(".")[0] in FORBIDDEN
        ]
    return found


def test_the_boards_entry_files_import_only_the_firmware_and_micropython():
    for name in ("boot.py", "main.py"):
        source = (ROOT / "firmware" / name).read_text(encoding="utf-8")
        assert forbidden_imports(source) == [], (
            f"firmware/{name} imports {forbidden_imports(source)}"
        )


def test_the_check_names_an_import_of_the_tools_at_any_depth():
    main = (ROOT / "firmware" / "main.py").read_text(encoding="utf-8")
    broken = main.replace(
        "from charger import startup",
        "from charger import startup\n        from tools.sim import machine",
        1,
    )
    assert broken != main
    assert [entry.split(" ")[0] for entry in forbidden_imports(broken)] == ["tools.sim"]
    assert forbidden_imports(main + "\nimport tests.firmware\n") == [
        f"tests.firmware (line {main.count(chr(10)) + 2})"
    ]

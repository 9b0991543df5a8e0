"""The declared runtime dependencies are exactly what the package imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: distribution name -> the import name it provides, where they differ
IMPORT_NAMES = {"scikit-learn": "sklearn", "pillow": "PIL"}
#: imported without being declared, and why
PROVIDED_BY_OTHERS = {"click": "typer < 0.24 depends on it (cli's fall-back import)"}


def _declared(group: str | None = None) -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    names = {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].lower() for s in specs}
    return {IMPORT_NAMES.get(n, n) for n in names}


def _imported() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "sc_eval").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_imported_by_the_package() -> None:
    unused = _declared() - _imported()
    assert not unused, f"declared in [project] dependencies but never imported: {unused}"


def test_third_party_imports_are_declared() -> None:
    third_party = _imported() - set(sys.stdlib_module_names) - {"sc_eval", "__future__"}
    third_party -= set(PROVIDED_BY_OTHERS)
    declared = _declared() | _declared("plot") | _declared("images")
    assert third_party <= declared, f"imported but not declared: {third_party - declared}"


def test_test_only_libraries_stay_out_of_the_runtime_set() -> None:
    assert "sklearn" not in _declared()
    assert "sklearn" in _declared("test")

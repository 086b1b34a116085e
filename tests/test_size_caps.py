"""Keep modules and functions small (style.md): fail above 600 lines a module, 80 a function."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

MODULE_CAP = 600
FUNCTION_CAP = 80
#: path -> reason. Every entry needs a reason; keep this list short.
ALLOWED: dict[str, str] = {}


def python_files() -> list[Path]:
    return sorted((REPO / "nexus").rglob("*.py"))


def test_package_is_found() -> None:
    assert len(python_files()) > 5


def test_modules_and_functions_within_caps() -> None:
    too_big: list[str] = []
    for path in python_files():
        relative = str(path.relative_to(REPO))
        if relative in ALLOWED:
            continue
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MODULE_CAP:
            too_big.append(f"{relative}: {lines} lines (cap {MODULE_CAP})")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_CAP:
                    too_big.append(f"{relative}:{node.lineno} {node.name}: {length} lines")
    assert too_big == []

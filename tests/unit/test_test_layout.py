"""The tests' own layout: no module under tests/ imports from a test module (`test_*`). What two test modules
share lives in tests/support/ (fixtures in a conftest.py), so each test module can be read, run, moved or
deleted alone, and no test function is imported (and collected) twice."""

from __future__ import annotations

import ast
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]

# Every form of the import the layout forbids, and one it allows (the last line).
FORBIDDEN_FORMS = """\
from tests.unit.test_wire import request
from tests.unit import test_wire as samples
import tests.e2e.test_injection
from .test_status import by_type
def later():
    from tests.integration.test_agent_forwarding import RESOURCE
from tests.support.placed_requests import request
"""


def _names_a_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imports_from_test_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of every import of, or from, a test module, at any depth (functions included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _names_a_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if _names_a_test_module(module):
                found.append((node.lineno, module))
            else:  # `from tests.unit import test_wire`
                found += [
                    (node.lineno, f"{module}.{alias.name}")
                    for alias in node.names
                    if alias.name.startswith("test_")
                ]
    return found


def test_no_module_under_tests_imports_from_a_test_module() -> None:
    assert [line for line, _ in imports_from_test_modules(ast.parse(FORBIDDEN_FORMS))] == [1, 2, 3, 4, 6]
    modules = sorted(TESTS.rglob("*.py"))
    assert pathlib.Path(__file__).resolve() in modules and len(modules) > 100
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: {name}"
        for path in modules
        for line, name in imports_from_test_modules(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "shared helpers belong in tests/support/ (fixtures in a conftest.py)"

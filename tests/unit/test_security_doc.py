"""docs/security.md's threat model names, for each claim, the tests that would fail if
the claim broke: every named test file and test function exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
# `tests/…/file.py`, `tests/…/file.py::name`, `file.py::name` and `::name` (the last file)
_REFERENCE = re.compile(r"`((?:tests/[\w/]+/)?\w+\.py)?(?:::(\w+))?`")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name for node in ast.walk(tree) if isinstance(node, kinds)}


def _claims() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("| claim | the test that fails if it breaks |", 1)[1]
    return [line for line in table.split("\n\n", 1)[0].splitlines() if line.startswith("| ")]


def test_every_claim_names_tests_that_exist():
    tests = sorted((ROOT / "tests").rglob("*.py"))
    claims = _claims()
    assert len(claims) >= 10
    for claim in claims:
        named, current = 0, None
        for file, function in _REFERENCE.findall(claim.split(" | ")[-1]):
            if file:
                found = [p for p in tests if p.as_posix().endswith(file)]
                assert found, f"{file} does not exist (claim: {claim[:60]}…)"
                current = found[0]
                named += 1
            if function:
                assert current is not None, f"::{function} names no file"
                assert function in _functions(current), f"{current.name} has no {function}"
        assert named, f"a claim without a test: {claim[:80]}"

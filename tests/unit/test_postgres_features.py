"""docs/postgresql.md's feature tables against the SQL syncd runs.

Every feature syncd relies on is listed with its first major, none is newer than the
oldest major syncd supports, and no feature on the avoided list appears anywhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "postgresql.md"
OLDEST = (13,)
_SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|CALL|LISTEN)\b")


def _sql_strings(path: Path) -> list[str]:
    """String literals of a module that look like SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _SQL_WORDS.search(node.value)
    ]


def _postgres(path: Path) -> bool:
    """Not the SQL of a MySQL business database (sql/mysql/, syncd/db/mysql/)."""
    return "mysql" not in path.relative_to(ROOT).parts


def _corpus() -> str:
    files = sorted((ROOT / "sql").rglob("*.sql")) + sorted((ROOT / "syncd").rglob("*.sql"))
    parts = [p.read_text(encoding="utf-8") for p in files if _postgres(p)]
    for module in sorted((ROOT / "syncd" / "db").rglob("*.py")):
        if _postgres(module):
            parts += _sql_strings(module)
    return "\n".join(parts)


def _cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(heading: str) -> list[tuple[str, tuple[int, ...], str]]:
    """Rows (feature, since, pattern) of the table under ``## heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---") or "| since |" in line:
            continue
        feature, since, pattern = _cells(line)
        rows.append((feature, tuple(int(n) for n in since.split(".")), pattern.strip("`")))
    assert rows, f"no table under '## {heading}' in {DOC.name}"
    return rows


RELIED = _table("Features syncd relies on")
AVOIDED = _table("Features syncd avoids")


@pytest.fixture(scope="module")
def corpus() -> str:
    return _corpus()


@pytest.mark.parametrize(("feature", "since", "pattern"), RELIED, ids=[r[0] for r in RELIED])
def test_relied_feature_is_used_and_old_enough(corpus, feature, since, pattern):
    assert since <= OLDEST, f"{feature} needs PostgreSQL {since}, newer than {OLDEST}"
    assert re.search(pattern, corpus, re.IGNORECASE), (
        f"{feature}: /{pattern}/ no longer occurs in the SQL; remove its row from {DOC.name}"
    )


@pytest.mark.parametrize(("feature", "since", "pattern"), AVOIDED, ids=[r[0] for r in AVOIDED])
def test_avoided_feature_is_not_used(corpus, feature, since, pattern):
    assert since > OLDEST, f"{feature} is in {OLDEST}: it belongs to the relied-on table"
    found = re.search(pattern, corpus, re.IGNORECASE)
    assert found is None, (
        f"{feature} (PostgreSQL {since}) is used: {found.group(0)!r}; the oldest supported "
        f"major is {OLDEST[0]}"
    )


def test_the_readme_and_the_doc_name_the_same_oldest_major():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    claim = f"PostgreSQL {OLDEST[0]} and newer"
    assert claim in readme
    assert claim in DOC.read_text(encoding="utf-8")

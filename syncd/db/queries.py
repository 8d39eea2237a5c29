"""The one loader of syncd's SQL files.

``QUERIES[name]`` returns the statement under the ``-- name --`` header of
``sql/queries.sql``. The SQL directory is found inside the installed package (a wheel
maps ``sql/`` to ``syncd/sql``) or, in a source checkout, at the repository root.
Files are read on first use, never at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import LiteralString

_HEADER = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)


@cache
def sql_dir() -> Path:
    """The directory holding schema.sql, queries.sql and migrations/."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "queries.sql").is_file():
            return candidate
    raise FileNotFoundError(
        f"syncd's SQL files are missing: looked in {here / 'sql'} and {here.parent / 'sql'}; "
        "reinstall syncd"
    )


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a queries file into ``{name: statement}``; names must be unique."""
    parts = _HEADER.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        statement = "\n".join(lines).strip()
        if not statement:
            raise ValueError(f"query {name!r} has no statement")
        queries[name] = statement
    return queries


@cache
def _load() -> dict[str, LiteralString]:
    return parse_queries((sql_dir() / "queries.sql").read_text(encoding="utf-8"))


class _Queries(Mapping[str, LiteralString]):
    def __getitem__(self, name: str) -> LiteralString:
        try:
            return _load()[name]
        except KeyError:
            raise KeyError(f"no query named {name!r} in queries.sql") from None

    def __iter__(self) -> Iterator[str]:
        return iter(_load())

    def __len__(self) -> int:
        return len(_load())


QUERIES: Mapping[str, LiteralString] = _Queries()

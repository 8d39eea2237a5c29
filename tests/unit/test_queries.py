from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd.db.queries import QUERIES, parse_queries, sql_dir

ROOT = Path(__file__).resolve().parents[2]


def test_every_query_used_in_syncd_exists():
    used = set()
    for path in (ROOT / "syncd").rglob("*.py"):
        used |= set(re.findall(r'QUERIES\["([a-z0-9_]+)"\]', path.read_text()))
    assert used, "no QUERIES[...] found: the scan is broken"
    assert sorted(used - set(QUERIES)) == []


def test_queries_have_descriptions_and_unique_names():
    text = (sql_dir() / "queries.sql").read_text()
    headers = re.findall(r"^-- ([a-z0-9_]+) --\n-- \S", text, re.MULTILINE)
    assert len(headers) == len(QUERIES) == len(set(headers))


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- a --\nSELECT 1;\n-- a --\nSELECT 2;\n")


def test_unknown_query_name_is_a_clear_error():
    with pytest.raises(KeyError, match="no query named 'nope'"):
        QUERIES["nope"]

"""Hypothesis strategies for outbox rows: the whole input space of each column.

Texts are any Unicode PostgreSQL's ``text`` holds (everything but NUL and lone
surrogates), from empty to thousands of characters, repetitive (they compress) or
scattered over all of Unicode (they do not). Payloads are JSON values of every shape,
plus the shapes that hit a limit: nested thousands of levels deep, a number with
thousands of digits, a document over the size ingest reads. Good rows are requests of
the test's two kinds, with any text in their values.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from syncd.domain import PAYLOAD_MAX_BYTES

CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
SHORT = st.text(CHARS, max_size=30)


def scattered(length: int, rng: random.Random) -> str:
    """Characters from the whole of Unicode, no NUL, no surrogate: text that does not
    compress (a long one does not fit an index entry)."""
    chars: list[str] = []
    while len(chars) < length:
        code = rng.randrange(1, 0x110000)
        if not 0xD800 <= code <= 0xDFFF:
            chars.append(chr(code))
    return "".join(chars)


TEXT = st.one_of(
    SHORT,
    st.builds(scattered, st.integers(0, 4000), st.randoms(use_true_random=False)),
    st.builds(lambda c, n: c * n, CHARS, st.integers(0, 6000)),
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | SHORT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(SHORT, children, max_size=4),
    max_leaves=12,
)


def nested(depth: int, array: bool) -> str:
    """JSON text of arrays (or objects) nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth if array else '{"a": ' * depth + "1" + "}" * depth


NESTED = st.builds(nested, st.integers(2, 1500), st.booleans())
#: JSON texts that hit a limit of PostgreSQL, Python or syncd.
EXTREME = st.one_of(
    NESTED,
    st.integers(4000, 6000).map(lambda n: '{"n": 1' + "0" * n + "}"),
    st.integers(300, 400).map(lambda n: '{"dept": 1' + "0" * n + '.5, "amount": 1}'),
    st.integers(-50, 50).map(
        lambda d: json.dumps({"applicant": "u1", "reason": "x" * (PAYLOAD_MAX_BYTES + d)})
    ),
)
PAYLOAD = st.one_of(JSON.map(json.dumps), EXTREME)
KIND = st.one_of(st.sampled_from(["leave", "po"]), TEXT)
ACTION = st.one_of(st.sampled_from(["submit", "cancel"]), TEXT)


@st.composite
def good_row(draw: st.DrawFn) -> dict[str, Any]:
    """A request of either kind that must become a pending round: any text in its values,
    any extra data beside them. ``key`` gets a unique prefix when the rows are written."""
    extra = draw(st.dictionaries(SHORT, JSON, max_size=3))
    if draw(st.booleans()):
        applicant = draw(st.text(CHARS, min_size=1, max_size=64))
        payload = {
            **extra,
            "applicant": applicant,
            "leave_type": draw(SHORT),
            "days": draw(st.integers(1, 30) | st.floats(0.5, 30)),
            "reason": draw(TEXT),
        }
        row = {"kind": "leave", "originator": draw(st.none() | TEXT), "expect": (applicant, -1)}
    else:
        originator = draw(st.text(CHARS, min_size=1, max_size=64))
        dept = draw(st.integers(-(2**63), 2**63 - 1))
        payload = {**extra, "dept": dept, "amount": draw(JSON), "note": draw(TEXT)}
        row = {"kind": "po", "originator": originator, "expect": (originator, dept)}
    return {
        **row,
        "class": "good",
        "key": draw(SHORT),
        "action": "submit",
        "payload": json.dumps(payload),
        "request_id": None,
    }


#: The whole input space of each column.
WILD = {
    "kind": KIND,
    "key": TEXT,
    "action": ACTION,
    "payload": PAYLOAD,
    "originator": st.none() | TEXT,
    "request_id": st.none() | TEXT,
}


@st.composite
def any_row(draw: st.DrawFn) -> dict[str, Any]:
    """A good row with some of its columns (or all) drawn from their whole input space: it
    may still be good by chance; usually it is not."""
    row = draw(good_row())
    for column in draw(st.sets(st.sampled_from(sorted(WILD)), min_size=1)):
        row[column] = draw(WILD[column])
    return {**row, "class": "any"}


@st.composite
def refused_row(draw: st.DrawFn) -> dict[str, Any]:
    """A good request the database refuses (the test's DBA rule: no key 'refused…')."""
    row = draw(good_row())
    return {**row, "class": "refused", "key": "refused" + row["key"]}


ROWS = st.lists(
    st.one_of(good_row(), any_row(), any_row(), refused_row()),
    min_size=1,
    max_size=12,
)

"""Ingest and submit read a row's mapping through one ``resolve_row``: an outbox row and an
approval round with the same payload and columns resolve alike, to what ``resolve`` reads
from that payload and those columns (or to the same error)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import OutboxRow, SubmitItem
from syncd.pipeline.mapping import MappingError, Resolved, resolve, resolve_row
from syncd.settings_kinds import KindSettings

#: Every kind of source: payload fields, a template, outbox columns, a constant, users.
KIND = KindSettings(
    process_code="PROC-LEAVE",
    originator={"column": "originator"},
    dept_id={"field": "dept"},
    form={
        "天数": "days",
        "事由": {"template": "{reason} ({kind})"},
        "编号": {"column": "business_key"},
        "类型": {"column": "kind"},
        "固定": {"value": "x"},
        '["开始时间","结束时间"]': {"fields": ["start", "end"]},
    },
    approvers=[{"action": "AND", "field": "approvers"}],
)
TEXT = st.text(max_size=8)
VALUE = st.none() | st.booleans() | st.integers() | TEXT | st.lists(TEXT, max_size=2)
NAMES = ["days", "reason", "kind", "dept", "start", "end", "approvers"]
#: Payloads that fit the kind (mostly), and any others.
FITTING = st.fixed_dictionaries(
    {
        "days": st.integers(1, 9),
        "reason": TEXT,
        "dept": st.integers(1, 10**6),
        "start": TEXT,
        "end": TEXT,
        "approvers": st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=2),
    },
    optional={"kind": VALUE},
)
PAYLOAD = FITTING | st.dictionaries(st.sampled_from(NAMES), VALUE) | st.lists(VALUE, max_size=2)
ORIGINATOR = st.text(min_size=1, max_size=8) | st.none() | st.just("")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _outcome(read: Callable[[], Resolved]) -> Resolved | str:
    try:
        return read()
    except MappingError as exc:
        return f"{exc.field}: {exc.message}"


@settings(max_examples=300, deadline=None)
@given(payload=PAYLOAD, kind=TEXT, key=TEXT, originator=ORIGINATOR)
def test_an_outbox_row_and_its_round_resolve_as_resolve_does(
    payload: Any, kind: str, key: str, originator: str | None
) -> None:
    row = OutboxRow(1, NOW, kind, key, "submit", payload, originator)
    item = SubmitItem(1, kind, key, 1, payload, originator, None, 0, NOW)
    columns = {"originator": originator, "business_key": key, "kind": kind}
    expected = _outcome(lambda: resolve(KIND, payload, columns))
    assert _outcome(lambda: resolve_row(KIND, row)) == expected
    assert _outcome(lambda: resolve_row(KIND, item)) == expected

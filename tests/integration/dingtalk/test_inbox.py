"""``PostgresInbox``: events stored once each, a burst in one transaction."""

from __future__ import annotations

import itertools
import math
import re
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.events import make_event
from syncd.domain import CHANNELS
from syncd.errors import StoreError

COUNTER = itertools.count(1000)


def _event(n: int, *, channel: str = "stream") -> Any:
    payload = {"processInstanceId": f"inst-{n}", "type": "start", "title": "请假 ✓"}
    return make_event(channel, "bpms_instance_change", payload, f"e-{n}")  # type: ignore[arg-type]


async def test_a_burst_is_stored_once_each_first_copy_new(
    inbox: PostgresInbox, inbox_rows: Any
) -> None:
    assert await inbox.put(_event(1)) is True
    burst = [_event(2), _event(1), _event(3), _event(2, channel="callback")]
    assert await inbox.put_many(burst) == [True, False, True, False]
    rows = await inbox_rows()
    assert [r["dedup_key"] for r in rows] == [
        "bpms_instance_change:e-1",
        "bpms_instance_change:e-2",
        "bpms_instance_change:e-3",
    ]
    assert rows[1]["channel"] == "stream" and rows[1]["instance_id"] == "inst-2"
    assert rows[1]["payload"]["title"] == "请假 ✓"
    assert await inbox.put_many([]) == []


async def test_a_burst_that_fails_stores_nothing(inbox: PostgresInbox, inbox_rows: Any) -> None:
    bad = replace(_event(2), channel="carrier pigeon")
    with pytest.raises(StoreError, match="cannot store the events"):
        await inbox.put_many([_event(1), bad])  # the channel's CHECK: the whole burst fails
    assert await inbox_rows() == []


#: JSON values as a sender may write them, with what PostgreSQL cannot store: NUL in texts
#: and keys, NaN and the infinities (Python's json reads them).
TEXTS = st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | st.just("a\x00b")
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([math.nan, math.inf, -math.inf, 0.5, -1.25])
    | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=10,
)


def stored(value: Any) -> Any:
    """``value`` as the inbox keeps it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {stored(k): stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored(v) for v in value]
    return value


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=st.dictionaries(TEXTS, VALUES, max_size=4), instance=TEXTS.filter(bool))
async def test_any_event_is_stored_with_what_postgresql_cannot_hold_replaced(
    inbox: PostgresInbox, inbox_rows: Any, extra: dict[str, Any], instance: str
) -> None:
    """NUL in any text (an instance id, a key, a value) and non-finite numbers would make
    the statement fail every time it is tried, holding up the events that came with it:
    the event is stored, NUL as U+FFFD and NaN/±Infinity as their names, and the burst
    with it."""
    payload = {**extra, "processInstanceId": instance, "type": "finish"}
    bad = make_event("stream", "bpms_instance_change", payload, f"e-{uuid.uuid4()}")
    good = _event(next(COUNTER))
    assert await inbox.put_many([bad, good]) == [True, True]
    rows = {r["dedup_key"]: r for r in await inbox_rows()}
    row = rows[stored(bad.dedup_key)]
    assert row["payload"] == stored(payload)
    assert row["instance_id"] == stored(instance)
    assert good.dedup_key in rows


async def test_the_inbox_takes_exactly_the_channels_syncd_knows(pool: Any) -> None:
    """The CHECK constraint of ``syncd.inbox.channel``, read from the live catalog of a
    migrated database, lists the same channels as ``syncd.domain.CHANNELS``."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
            " WHERE c.conrelid = 'syncd.inbox'::regclass AND c.contype = 'c'"
            " AND pg_get_constraintdef(c.oid) LIKE '%channel%'"
        )
        [row] = await cursor.fetchall()
    assert sorted(re.findall(r"'([^']*)'::text", row["definition"])) == sorted(CHANNELS)

"""``PostgresInbox``: events stored once each, a burst in one transaction."""

from __future__ import annotations

import re
from typing import Any

import pytest

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.events import make_event
from syncd.domain import CHANNELS
from syncd.errors import StoreError


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
    bad = make_event("stream", "bpms_instance_change", {"x": "\u0000"}, "e-nul")
    with pytest.raises(StoreError, match="cannot store the events"):
        await inbox.put_many([_event(1), bad])  # jsonb refuses NUL: the whole burst fails
    assert await inbox_rows() == []


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

"""A statement that looks rows up by their key reads them through the primary key, even on
statistics taken before a backlog arrived.

A new installation (or one after a quiet night) has ``syncd.approval`` and ``syncd.inbox``
analysed with only finished work in them; a backlog then fills them faster than
autovacuum analyses again. A lookup such as ``id = $1 AND state IN (...)`` lets the
planner pick a partial index (``WHERE state IN (...)``, ``WHERE processed_at IS NULL``)
that those statistics call empty, and a call then scans it whole. The 10k benchmark's
plans showed it for about 1% of the calls recording a create or marking events processed
(3–10 ms each); how many depends on the plans a connection happens to cache, and it grows
with the backlog. The hot statements name only the key where they scan and check the
state on the locked row; this test fills the tables after ``ANALYZE`` and reads their
plans, custom and generic (psycopg prepares a statement on its fifth use).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from syncd.db.queries import QUERIES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BACKLOG = 3000

#: Each statement with parameters naming rows in the middle of the backlog.
STATEMENTS: dict[str, dict[str, Any]] = {
    "record_created": {
        "id": BACKLOG * 3 // 2,
        "instance_id": "inst-x",
        "process_code": "PROC-1",
        "form_values": None,
        "created_at": NOW,
        "now": NOW,
        "calls": 1,
        "next_poll_at": NOW,
        "call_lines": json.dumps([]),
        "message": "created",
        "actor": "test",
        "month": NOW.date().replace(day=1),
    },
    "record_attempt_failed": {
        "id": BACKLOG * 3 // 2,
        "to_state": "pending",
        "next_attempt_at": NOW,
        "refund": 0,
        "process_code": None,
        "form_values": None,
        "error_code": "x",
        "error_message": "x",
        "calls": 1,
        "now": NOW,
        "owner": "test",
    },
    "touch_approvals": {
        "ids": list(range(BACKLOG * 3 // 2, BACKLOG * 3 // 2 + 40)),
        "urls": [None] * 40,
        "now": NOW,
        "next_poll_at": NOW,
        "progress_due": NOW,
    },
    "mark_inbox_processed": {
        "ids": list(range(BACKLOG * 3 // 2, BACKLOG * 3 // 2 + 40)),
        "note": None,
        "now": NOW,
    },
    "set_next_poll": {"id": BACKLOG * 3 // 2, "next_poll_at": NOW, "calls": 1},
    "release_cancel": {
        "id": BACKLOG * 3 // 2,
        "next_attempt_at": NOW,
        "error_code": "x",
        "error_message": "x",
        "calls": 1,
        "now": NOW,
    },
    "record_polled_progress": {"id": BACKLOG * 3 // 2, "now": NOW},
    "finish_approvals": {
        "inbox_ids": list(range(BACKLOG * 3 // 2, BACKLOG * 3 // 2 + 40)),
        "finals": json.dumps([]),
        "now": NOW,
        "actor": "test",
    },
}


def _indexes(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _indexes(child)
    return found


@pytest.fixture
def stale(database: str) -> psycopg.Connection[Any]:
    """Finished work analysed, then a backlog: approvals submitting and running, events
    unprocessed, none of them in the statistics."""
    conn = psycopg.connect(database, autocommit=True)
    conn.execute(
        "INSERT INTO syncd.approval (kind, business_key, state, instance_id) "
        "SELECT 'leave', 'old' || g, 'approved', 'old-' || g FROM generate_series(1, %s) g",
        (BACKLOG,),
    )
    conn.execute(
        "INSERT INTO syncd.inbox (dedup_key, channel, event_type, payload, processed_at) "
        "SELECT 'old' || g, 'stream', 'bpms_task_change', '{}', now() "
        "FROM generate_series(1, %s) g",
        (BACKLOG,),
    )
    conn.execute("VACUUM ANALYZE syncd.approval, syncd.inbox")
    conn.execute(
        "INSERT INTO syncd.approval (kind, business_key, state, instance_id) "
        "SELECT 'leave', g::text, CASE WHEN g %% 2 = 0 THEN 'running' ELSE 'submitting' END, "
        "CASE WHEN g %% 2 = 0 THEN 'inst-' || g END FROM generate_series(1, %s) g",
        (BACKLOG,),
    )
    conn.execute(
        "INSERT INTO syncd.inbox (dedup_key, channel, event_type, payload) "
        "SELECT 'k' || g, 'stream', 'bpms_task_change', '{}' FROM generate_series(1, %s) g",
        (BACKLOG,),
    )
    return conn


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_a_lookup_by_key_reads_the_primary_key(stale, name, mode):
    partial = {
        index
        for (index,) in stale.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'syncd' "
            "AND tablename IN ('approval', 'inbox') AND indexdef LIKE '%% WHERE %%'"
        )
    }
    stale.execute(f"SET plan_cache_mode = {mode}")
    with stale.transaction(force_rollback=True):
        [(plan,)] = stale.execute(f"EXPLAIN (FORMAT JSON) {QUERIES[name]}", STATEMENTS[name])
    used = _indexes(plan[0]["Plan"])
    assert used & partial == set(), f"{name} scans a partial index: {used & partial}"


def test_the_backlog_is_newer_than_the_statistics(stale):
    """The premise: the statistics know only the finished work."""
    rows = stale.execute(
        "SELECT reltuples FROM pg_class WHERE oid IN "
        "('syncd.approval'::regclass, 'syncd.inbox'::regclass)"
    ).fetchall()
    assert rows == [(BACKLOG,), (BACKLOG,)]

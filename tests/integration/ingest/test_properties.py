"""Property: whatever an application can put into ``syncd.outbox``, ingest consumes every
row, accounts for each, and never stops on one.

Rows from the whole input space (:mod:`.strategies`) are mixed with good requests and with
good requests the database refuses (a DBA's CHECK constraint on ``syncd.approval``),
written by an application role that may only INSERT into the outbox, and ingested by the
daemon's least-privilege role. Then:

- every batch committed, and every row is consumed;
- every row is accounted for exactly once: an approval round made from it, a quarantine
  line, or (a cancel) a note on the round it canceled;
- every good row is a pending round with its kind, key, payload, originator and
  department intact; every refused one is quarantined with the database's error;
- every other row is a pending round with its data intact, an ``invalid`` one whose
  message starts with its outbox row and names the field, or quarantined;
- the quarantine metric counts the quarantined rows.

One database for the test, emptied before each example.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from prometheus_client import CollectorRegistry

from syncd.domain import BUSINESS_KEY_MAX, KIND_MAX, stored_text
from syncd.metrics import Metrics

from .conftest import ingest_all, query, run, write
from .strategies import ROWS
from .test_bad_rows import DBA_RULE

#: What an invalid round's message must name, per error code.
FIELDS: dict[str, tuple[str, ...]] = {
    "unknown_kind": ("kind",),
    "empty_key": ("business_key",),
    "key_too_long": ("business_key",),
    "unknown_action": ("action",),
    "nothing_to_cancel": ("cancel",),
    "nothing_to_comment": ("comment",),
    "still_running": ("on_resubmit",),
    "bad_payload": ("payload", "originator", "dept_id", "form ", "approvers", "cc"),
}
EMPTY = (
    "TRUNCATE syncd.outbox_quarantine, syncd.approval_event, syncd.approval, syncd.outbox "
    "RESTART IDENTITY CASCADE"
)
ACCOUNTS = """
SELECT o.id, o.consumed_at IS NOT NULL,
       a.kind, a.business_key, a.state, a.last_error_code, a.last_error_message,
       a.payload = o.payload, a.originator, a.dept_id,
       q.error_code, q.error_message,
       (SELECT count(*) FROM syncd.approval_event e
         WHERE e.message = 'cancel requested by outbox row ' || o.id
            OR e.message LIKE 'outbox row ' || o.id || ': cancel ignored%%')
  FROM syncd.outbox o
  LEFT JOIN syncd.approval a ON a.outbox_id = o.id
  LEFT JOIN syncd.outbox_quarantine q ON q.outbox_id = o.id
 ORDER BY o.id
"""


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(rows=ROWS)
def test_no_row_can_stop_another_and_none_is_lost(roles, rows):
    query(roles.admin, EMPTY)
    query(roles.admin, "ALTER TABLE syncd.approval DROP CONSTRAINT IF EXISTS dba_rule")
    query(roles.admin, DBA_RULE)
    for number, row in enumerate(rows):
        if row["class"] != "any":
            row["key"] = f"{row['key'][:7]}#{number}#{row['key'][7:]}"  # unique, prefix kept
    written = [row for row, ok in zip(rows, write(roles.writer, rows), strict=True) if ok]
    metrics = Metrics(CollectorRegistry(), kinds=["leave", "po"])

    assert run(ingest_all(roles.app, observer=metrics, batch_size=5)) == len(written)

    accounts = query(roles.admin, ACCOUNTS)
    assert len(accounts) == len(written)
    for row, account in zip(written, accounts, strict=True):
        check(row, *account)
    quarantined = sum(1 for account in accounts if account[10] is not None)
    assert _counted(metrics) == quarantined


def _counted(metrics: Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "syncd_outbox_quarantined_total"
    )


def check(
    row: dict[str, Any],
    outbox_id: int,
    consumed: bool,
    kind: str | None,
    key: str | None,
    state: str | None,
    code: str | None,
    message: str | None,
    intact: bool | None,
    originator: str | None,
    dept_id: int | None,
    q_code: str | None,
    q_message: str | None,
    notes: int,
) -> None:
    where = f"outbox row {outbox_id}"
    event(f"{row['class']} row: {state or ('quarantined' if q_code else 'note')} {code or ''}")
    assert consumed, where
    made, held = state is not None, q_code is not None
    # A round, or a quarantine line, or only a note (a cancel; a superseding submit makes
    # a round and a note).
    assert made + held == 1 or (not made and not held and notes), (where, state, q_code)
    if row["class"] == "good":
        assert (kind, key, state, intact) == (row["kind"], row["key"], "pending", True), where
        assert (originator, dept_id) == row["expect"], where
    elif row["class"] == "refused":
        assert q_code == "23514" and q_message and "dba_rule" in q_message, where
    elif held:
        assert q_code and q_message, where
    elif made:
        assert (kind, key) == (
            stored_text(row["kind"], KIND_MAX),
            stored_text(row["key"], BUSINESS_KEY_MAX),
        ), where
        if state == "pending":
            assert intact, where
        else:
            assert state == "invalid" and code in FIELDS and message, (where, state, code)
            assert message.startswith(f"{where}: ") and len(message) <= 2000, message
            assert any(name in message for name in FIELDS[code]), message
    else:
        assert row["action"] == "cancel", where

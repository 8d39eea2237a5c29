"""Rows that once stopped every row behind them: each is parked (or quarantined) on its
own, with a message naming the field and the fix, and the good rows flow."""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from syncd.db.admin_store import AdminStore, open_pool
from syncd.db.store import PostgresControlStore
from syncd.domain import BUSINESS_KEY_MAX, KIND_MAX, stored_text
from syncd.metrics import Metrics, Sources
from syncd.testing import FakeClock

from .conftest import KINDS, ingest_all, query, run, write
from .strategies import scattered

LEAVE = {
    "applicant": "u1",
    "leave_type": "年假",
    "start_date": "2026-01-10",
    "end_date": "2026-01-11",
    "days": 2,
    "reason": "rest",
}
PO = {"dept": 7, "amount": 120.5, "note": "chairs 🪑"}


#: Texts that do not compress, as a capture trigger on a long text key column could write.
LONG_KEY = scattered(3000, random.Random(1))
LONG_KIND = scattered(3000, random.Random(2))
#: The longest key stored as it is, in 4-byte characters: with the longest stored kind,
#: the largest entry the round's unique index can get.
WIDEST_KEY = "".join(map(chr, random.Random(3).sample(range(0x10000, 0x110000), 512)))

#: key -> (row, error code, fragment of the message); error code None: pending.
ROWS: dict[str, tuple[dict[str, Any], str | None, str | None]] = {
    "good-1": (dict(kind="leave", payload=json.dumps(LEAVE)), None, None),
    "9": (
        dict(kind="po", payload="null", originator="u2"),
        "bad_payload",
        "payload: expected a JSON object, got a JSON null",
    ),
    LONG_KEY: (
        dict(kind="po", payload=json.dumps(PO), originator="u2"),
        "key_too_long",
        "business_key has 3000 characters, more than the 512 syncd takes",
    ),
    "good-2": (dict(kind="po", payload=json.dumps(PO), originator="u2"), None, None),
    "array": (dict(kind="leave", payload="[1, 2]"), "bad_payload", "got a JSON array"),
    "string": (dict(kind="leave", payload='"leave"'), "bad_payload", "got a JSON string"),
    "huge": (
        dict(
            kind="leave",
            payload="jsonb_build_object('applicant', 'u1', 'reason', repeat('x', 2100000))",
            expression=True,
        ),
        "bad_payload",
        "more than the 1048576 bytes of JSON syncd reads",
    ),
    "deep": (
        dict(
            kind="leave", payload="(repeat('[', 3000) || repeat(']', 3000))::jsonb", expression=True
        ),
        "bad_payload",
        "payload: nested more than 64 levels deep",
    ),
    "deep-inside": (
        dict(kind="leave", payload=json.dumps({**LEAVE, "x": json.loads("[" * 100 + "]" * 100)})),
        "bad_payload",
        "payload: nested more than 64 levels deep",
    ),
    "digits": (
        dict(
            kind="leave",
            payload="""('{"applicant": "u1", "days": ' || repeat('9', 5000) || '}')::jsonb""",
            expression=True,
        ),
        "bad_payload",
        "a number has more digits than syncd reads",
    ),
    "dept": (
        dict(kind="po", payload=json.dumps({**PO, "dept": 1e30}), originator="u2"),
        "bad_payload",
        "dept_id: expected a department number, got 1" + "0" * 30,
    ),
    "kind": (dict(kind=LONG_KIND, payload="{}"), "unknown_kind", "(3000 characters) is not"),
    WIDEST_KEY: (dict(kind=LONG_KIND[::-1], payload="{}"), "unknown_kind", "is not configured"),
    "action": (
        dict(kind="leave", payload=json.dumps(LEAVE), action="y" * 5000),
        "unknown_action",
        "… (5000 characters) is not 'submit', 'cancel' or 'comment'",
    ),
    "cancel": (
        dict(kind="leave", payload="null", action="cancel"),
        "nothing_to_cancel",
        "cancel for leave 'cancel', which was never submitted",
    ),
    "键-😀-𝔘": (
        dict(kind="leave", payload=json.dumps({**LEAVE, "reason": "家里有事 🏠 𝔘𝔫𝔦"})),
        None,
        None,
    ),
}
#: Rows whose round keeps '{}' as payload (the original stays in syncd.outbox).
EMPTIED = {"huge", "deep", "deep-inside", "digits"}


def test_rows_that_stopped_ingest_are_parked_and_the_rows_behind_them_flow(roles):
    rows = [{**row, "key": key} for key, (row, *_) in ROWS.items()]
    assert all(write(roles.writer, rows))
    assert run(ingest_all(roles.app, batch_size=50)) == len(ROWS)

    assert query(roles.admin, "SELECT count(*) FROM syncd.outbox WHERE consumed_at IS NULL") == [
        (0,)
    ]
    assert query(roles.admin, "SELECT count(*) FROM syncd.outbox_quarantine") == [(0,)]
    found = {
        (kind, key): (state, code, message, kept, emptied)
        for kind, key, state, code, message, kept, emptied in query(
            roles.admin,
            "SELECT a.kind, a.business_key, a.state, a.last_error_code, a.last_error_message, "
            "       a.payload = o.payload, a.payload = '{}' "
            "  FROM syncd.approval a JOIN syncd.outbox o ON o.id = a.outbox_id",
        )
    }
    assert len(found) == len(ROWS)
    for key, (row, code, fragment) in ROWS.items():
        stored = (stored_text(row["kind"], KIND_MAX), stored_text(key, BUSINESS_KEY_MAX))
        state, error_code, message, kept, emptied = found[stored]
        if code is None:
            assert (state, error_code, kept) == ("pending", None, True), key
            continue
        assert (state, error_code) == ("invalid", code), key
        assert message.startswith("outbox row ") and fragment in message, (key, message)
        assert len(message) <= 2000
        assert emptied if key in EMPTIED else kept, key
    # What the tester found: a JSON null payload is kept as the JSON value null.
    assert query(
        roles.admin, "SELECT payload = 'null'::jsonb FROM syncd.approval WHERE business_key = '9'"
    ) == [(True,)]
    # The long key is stored shortened, with its length and a hash of the whole.
    [(stored_key,)] = query(
        roles.admin,
        "SELECT business_key FROM syncd.approval WHERE last_error_code = 'key_too_long'",
    )
    assert len(stored_key) == BUSINESS_KEY_MAX and "…[3000 characters, sha256 " in stored_key


DBA_RULE = (
    "ALTER TABLE syncd.approval ADD CONSTRAINT dba_rule CHECK (business_key NOT LIKE 'refused%')"
)


def test_a_row_the_database_refuses_is_quarantined_alone_and_kept(roles, caplog):
    """Any database error on a row's data (here a DBA's own CHECK constraint) is met row by
    row: the refused rows are quarantined and consumed, the others ingested in order."""
    query(roles.admin, DBA_RULE)
    keys = ["a", "refused-1", "b", "refused-2", "c", " "]
    assert all(
        write(roles.writer, [dict(kind="leave", key=k, payload=json.dumps(LEAVE)) for k in keys])
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, kinds=["leave", "po"])
    with caplog.at_level(logging.WARNING, logger="syncd.pipeline.ingest"):
        assert run(ingest_all(roles.app, observer=metrics)) == len(keys)

    assert query(roles.admin, "SELECT count(*) FROM syncd.outbox WHERE consumed_at IS NULL") == [
        (0,)
    ]
    assert query(
        roles.admin, "SELECT business_key, state FROM syncd.approval ORDER BY outbox_id"
    ) == [("a", "pending"), ("b", "pending"), ("c", "pending"), (" ", "invalid")]
    quarantined = query(
        roles.admin,
        "SELECT kind, business_key, action, error_code, error_message FROM syncd.quarantined "
        "ORDER BY outbox_id",
    )
    assert [q[:4] for q in quarantined] == [
        ("leave", "refused-1", "submit", "23514"),
        ("leave", "refused-2", "submit", "23514"),
    ]
    assert all('violates check constraint "dba_rule"' in q[4] for q in quarantined)
    counted = registry.get_sample_value(
        "syncd_outbox_quarantined_total", {"kind": "leave", "reason": "integrity_violation"}
    )
    assert counted == 2
    logged = [r for r in caplog.records if getattr(r, "action", "") == "ingest_quarantined"]
    assert len(logged) == 2 and {r.sqlstate for r in logged} == {"23514"}
    assert {(r.kind, r.business_key) for r in logged} == {
        ("leave", "refused-1"),
        ("leave", "refused-2"),
    }
    # The rows were decided twice (the batch, then row by row): each counted once, and a
    # quarantined row never as parked.
    parked = {"kind": "leave", "state": "invalid", "reason": "empty_key"}
    assert registry.get_sample_value("syncd_approvals_parked_total", parked) == 1
    assert [
        r.outbox_id for r in caplog.records if getattr(r, "action", "") == "ingest_invalid"
    ] == [6]

    async def retention_then_requeue() -> list[str]:
        async with open_pool(roles.app) as pool:
            now = FakeClock().now()
            await metrics.scrape.refresh(Sources(now, "test", store=PostgresControlStore(pool)))
            assert registry.get_sample_value("syncd_outbox_quarantine", {"kind": "leave"}) == 2
            await PostgresControlStore(pool).purge(now + timedelta(days=400))
            return [r["business_key"] for r in await AdminStore(pool).requeue([])]

    query(roles.admin, "ALTER TABLE syncd.approval DROP CONSTRAINT dba_rule")
    assert run(retention_then_requeue()) == ["refused-1", "refused-2"]
    assert query(roles.admin, "SELECT count(*) FROM syncd.outbox") == [(2,)]  # quarantined stayed
    assert run(ingest_all(roles.app)) == 2
    assert query(
        roles.admin, "SELECT business_key, state FROM syncd.approval WHERE business_key LIKE 'ref%'"
    ) == [("refused-1", "pending"), ("refused-2", "pending")]
    assert query(roles.admin, "SELECT count(*) FROM syncd.quarantined") == [(0,)]


class Defective(dict[str, Any]):
    """A configuration whose lookup of one kind fails, as a defect in syncd might."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key == "boom":
            raise RuntimeError("a defect")
        return super().get(key, default)


def test_a_row_syncd_fails_to_decide_is_parked_and_the_others_flow(roles, caplog):
    rows = [dict(kind=kind, key=kind, payload=json.dumps(LEAVE)) for kind in ("leave", "boom")]
    assert all(write(roles.writer, [*rows, dict(kind="leave", key="after", payload="{}")]))
    with caplog.at_level(logging.ERROR, logger="syncd.pipeline.ingest"):
        assert run(ingest_all(roles.app, kinds=Defective(KINDS))) == 3
    states = query(
        roles.admin,
        "SELECT business_key, state, last_error_code, last_error_message FROM syncd.approval "
        "ORDER BY outbox_id",
    )
    assert [s[:3] for s in states] == [
        ("leave", "pending", None),
        ("boom", "invalid", "internal_error"),
        ("after", "invalid", "bad_payload"),
    ]
    assert "syncd failed while reading this row (RuntimeError); this is a defect" in states[1][3]
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "ingest_error"]
    assert record.exc_info and record.outbox_id == 2

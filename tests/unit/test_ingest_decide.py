"""The pure ingest decision over the whole input space: it never raises, every invalid
round names the row and the field, and a stored round always fits the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.db.ingest_store import read_payload
from syncd.domain import (
    BUSINESS_KEY_MAX,
    KIND_MAX,
    PAYLOAD_MAX_DEPTH,
    ApprovalState,
    LatestRound,
    NewRound,
    OutboxRow,
    Unreadable,
    stored_text,
)
from syncd.pipeline.ingest import decide, storable, too_deep
from syncd.settings_kinds import KindSettings

KINDS = {
    "leave": KindSettings(
        process_code="PROC-LEAVE",
        originator="applicant",
        form={"天数": "days", "事由": {"template": "{reason}"}},
    ),
    "po": KindSettings(process_code="PROC-PO", dept_id={"field": "dept"}, on_resubmit="supersede"),
}
CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TEXT = st.text(CHARS, max_size=20) | st.builds(lambda c, n: c * n, CHARS, st.integers(0, 3000))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)
PAYLOAD = st.one_of(
    JSON,
    st.fixed_dictionaries({"applicant": JSON, "dept": JSON, "days": JSON, "reason": JSON}),
    st.builds(Unreadable, TEXT),
    st.integers(1, 200).map(lambda depth: json.loads("[" * depth + "]" * depth)),
)
LATEST = st.none() | st.builds(
    LatestRound,
    id=st.integers(1, 10**6),
    round=st.integers(1, 10**6),
    state=st.sampled_from(ApprovalState),
    cancel_requested=st.booleans(),
)
ROW = st.builds(
    OutboxRow,
    id=st.integers(1, 2**63 - 1),
    created_at=st.just(datetime(2026, 1, 1, tzinfo=UTC)),
    kind=st.sampled_from(sorted(KINDS)) | TEXT,
    business_key=TEXT,
    action=st.sampled_from(["submit", "cancel", "comment"]) | TEXT,
    payload=PAYLOAD,
    originator=st.none() | TEXT,
)
CODES = {
    "unknown_kind",
    "empty_key",
    "key_too_long",
    "unknown_action",
    "still_running",
    "bad_payload",
    "nothing_to_cancel",
    "nothing_to_comment",
}


@settings(max_examples=300, deadline=None)
@given(row=ROW, latest=LATEST)
def test_every_row_gets_a_decision_that_fits_the_database(row, latest):
    decisions = decide(row, latest, KINDS)
    rounds = [d for d in decisions if isinstance(d, NewRound)]
    assert decisions and len(rounds) <= 1
    for new in rounds:
        if new.state is ApprovalState.PENDING:
            assert row.kind in KINDS and row.action == "submit"
            assert isinstance(new.originator, str) and new.originator
            assert new.dept_id is not None and -(2**63) <= new.dept_id < 2**63
            assert new.keep_payload and isinstance(row.payload, dict)
            assert len(row.business_key) <= BUSINESS_KEY_MAX
        else:
            assert new.state is ApprovalState.INVALID and new.error_code in CODES
            message = new.error_message or ""
            assert message.startswith(f"outbox row {row.id}: ") and len(message) <= 2000
            assert new.keep_payload == storable(row.payload)
    kind, key = row.key
    assert len(kind) <= KIND_MAX and len(key) <= BUSINESS_KEY_MAX


def test_nesting_is_counted_in_levels_of_objects_and_arrays():
    at_limit = json.loads(
        '{"a": ' + "[" * (PAYLOAD_MAX_DEPTH - 1) + "]" * (PAYLOAD_MAX_DEPTH - 1) + "}"
    )
    over = {"a": at_limit}
    assert not too_deep(at_limit, PAYLOAD_MAX_DEPTH) and too_deep(over, PAYLOAD_MAX_DEPTH)
    assert not too_deep("text", 1) and not too_deep({}, 1) and too_deep([[]], 1)


@given(prefix=st.text(CHARS, min_size=600, max_size=600), a=TEXT, b=TEXT)
def test_long_texts_are_stored_shortened_and_still_apart(prefix, a, b):
    short_a, short_b = stored_text(prefix + a, 512), stored_text(prefix + b, 512)
    assert len(short_a) == len(short_b) == 512
    assert (short_a == short_b) == (a == b)
    assert stored_text(prefix[:512], 512) == prefix[:512]


def test_payloads_python_cannot_read_are_unreadable_with_the_fix():
    assert read_payload('{"a": [1, "x"]}', 15) == {"a": [1, "x"]}
    deep = read_payload("[" * 5000 + "]" * 5000, 10000)
    digits = read_payload('{"n": 1' + "0" * 5000 + "}", 5010)
    huge = read_payload(None, 3_000_000)
    assert isinstance(deep, Unreadable) and "nested more than 64 levels" in deep.reason
    assert isinstance(digits, Unreadable) and "write such a number as a string" in digits.reason
    assert isinstance(huge, Unreadable) and "3000000 bytes, more than the 1048576" in huge.reason

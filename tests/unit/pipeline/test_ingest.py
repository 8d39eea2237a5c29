"""Ingest: outbox rows in arrival order become rounds; a row the database refuses is set
aside on its own; each parked row is reported once, whatever the store retried."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import ApprovalState, OutboxRow
from syncd.errors import StoreError
from syncd.pipeline.ingest import Ingest
from syncd.testing import FakeClock
from tests.fakes import MemoryDb, MemoryIngestStore, RecordingObserver
from tests.unit.pipeline.support import DEMO_KINDS, EXAMPLES, LEAVE, leave

A = ApprovalState
#: What an application may write: a good request, one that parks, one the database refuses.
ROWS = st.lists(st.sampled_from(["good", "parked", "refused"]), max_size=12)


def refuse(row: OutboxRow) -> str | None:
    return "22021" if row.business_key.startswith("refused") else None


@EXAMPLES
@given(rows=ROWS, batch_size=st.integers(1, 5))
async def test_refused_rows_are_quarantined_and_parked_rows_reported_once(
    rows: list[str], batch_size: int
) -> None:
    db, clock, observer = MemoryDb(), FakeClock(), RecordingObserver()
    ingest = Ingest(
        MemoryIngestStore(db, refuse=refuse),
        DEMO_KINDS,
        clock,
        batch_size=batch_size,
        observer=observer,
    )
    for n, what in enumerate(rows):
        payload = leave() if what != "parked" else {"days": 1}  # no applicant
        db.add_outbox(LEAVE, f"{what}-{n}", payload, at=clock.now())
    handled = 0
    while (done := await ingest.run_once()) > 0:
        handled += done
    assert handled == len(rows)
    made = Counter(a.business_key.split("-")[0] for a in db.t.approvals.values())
    assert made == Counter(what for what in rows if what != "refused")
    assert [q for q, _ in db.t.quarantine] == [
        e.id for e in db.t.outbox.values() if e.business_key.startswith("refused")
    ]
    assert observer.of("outbox_quarantined") == [(LEAVE, "22021")] * rows.count("refused")
    assert observer.of("approval_parked") == [(LEAVE, "invalid", "bad_payload")] * rows.count(
        "parked"
    )
    assert all(e.consumed_at is not None for e in db.t.outbox.values())


@pytest.mark.parametrize(
    ("on_resubmit", "second"), [("reject", A.INVALID), ("supersede", A.PENDING)]
)
async def test_a_resubmit_in_the_same_batch_sees_the_round_made_before_it(
    on_resubmit: str, second: ApprovalState
) -> None:
    db, clock = MemoryDb(), FakeClock()
    kinds = {LEAVE: DEMO_KINDS[LEAVE].model_copy(update={"on_resubmit": on_resubmit})}
    db.add_outbox(LEAVE, "7", leave())
    db.add_outbox(LEAVE, "7", leave(days=3))
    await Ingest(MemoryIngestStore(db), kinds, clock).run_once()
    first, then = sorted(db.t.approvals.values(), key=lambda a: a.round)
    assert (first.round, first.state, then.round, then.state) == (1, A.PENDING, 2, second)
    assert (first.cancel_requested_at is not None) == (on_resubmit == "supersede")


async def test_a_database_failure_leaves_every_row_to_the_next_run() -> None:
    db, clock = MemoryDb(), FakeClock()
    ingest = Ingest(MemoryIngestStore(db), DEMO_KINDS, clock)
    db.add_outbox(LEAVE, "7", leave())
    db.fail("ingest")
    with pytest.raises(StoreError):
        await ingest.run_once()
    assert not db.t.approvals and all(e.consumed_at is None for e in db.t.outbox.values())
    assert await ingest.run_once() == 1 and len(db.t.approvals) == 1

"""The in-memory fakes keep the promises the other tests lean on: each implements its
port (mypy checks the assignments below), a store method is all or nothing, and a move
the state machine does not allow is never made quietly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import TRANSITIONS, ApprovalState, Final
from syncd.errors import StoreError
from syncd.ports import (
    ApplyStore,
    ApprovalClient,
    BusinessTarget,
    CancelStore,
    ControlStore,
    InboxWriter,
    IngestStore,
    Observer,
    PollStore,
    SubmitStore,
    WriteBackStore,
)
from syncd.testing import FakeClock
from tests.fakes import (
    MemoryApplyStore,
    MemoryCancelStore,
    MemoryControlStore,
    MemoryDb,
    MemoryInbox,
    MemoryIngestStore,
    MemoryPollStore,
    MemorySubmitStore,
    MemoryTarget,
    MemoryWriteBackStore,
    RecordingObserver,
    ScriptedClient,
    Tables,
)

A = ApprovalState


def test_each_fake_implements_its_port() -> None:
    db, clock = MemoryDb(), FakeClock()
    stores: list[object] = []
    ingest: IngestStore = MemoryIngestStore(db)
    submit: SubmitStore = MemorySubmitStore(db)
    control: ControlStore = MemoryControlStore(db)
    apply: ApplyStore = MemoryApplyStore(db, {})
    writeback: WriteBackStore = MemoryWriteBackStore(db, {})
    poll: PollStore = MemoryPollStore(db)
    cancel: CancelStore = MemoryCancelStore(db)
    inbox: InboxWriter = MemoryInbox(db, clock)
    target: BusinessTarget[Tables] = MemoryTarget()
    client: ApprovalClient = ScriptedClient()
    observer: Observer = RecordingObserver()
    stores += [ingest, submit, control, apply, writeback, poll, cancel, inbox, target]
    assert len(stores) == 9 and client and observer


async def test_a_store_method_that_fails_leaves_every_table_as_it_was() -> None:
    db, clock = MemoryDb(), FakeClock()
    target = MemoryTarget("app.leave", refuse=lambda outcome: "locked")
    store = MemoryApplyStore(db, {"leave": target})
    target.add_row(db, "7")
    row = db.add_approval(kind="leave", business_key="7", round=1, state=A.RUNNING)
    final = Final(A.APPROVED, "COMPLETED", "agree", clock.now())
    done = await store.finish_many([(row.ref(), final)], clock.now())
    assert done is None  # the target refused: nothing was done
    assert row.state is A.RUNNING and db.approval(row.id) is row
    assert target.row(db, "7") == {"writes": 0} and db.transitions(row.id) == []


@pytest.mark.parametrize("after_commit", [False, True])
async def test_a_failure_is_injected_before_anything_changes_or_after_the_commit(
    after_commit: bool,
) -> None:
    db, clock = MemoryDb(), FakeClock()
    store = MemoryControlStore(db)
    db.fail("control.set", after_commit=after_commit)
    with pytest.raises(StoreError):
        await store.set("pause", "quota", None, clock.now())
    assert (await store.get("pause", clock.now()) is not None) == after_commit


@given(source=st.sampled_from(ApprovalState), target=st.sampled_from(ApprovalState))
def test_a_move_the_state_machine_does_not_allow_fails_the_test(
    source: ApprovalState, target: ApprovalState
) -> None:
    db, clock = MemoryDb(), FakeClock()
    row = db.add_approval(kind="leave", business_key="7", round=1, state=source)
    if target in TRANSITIONS[source] or source is target is A.UNKNOWN:
        db.move(row, target, clock.now())
        assert row.state is target
    else:
        with pytest.raises(AssertionError, match="is not a transition"):
            db.move(row, target, clock.now())

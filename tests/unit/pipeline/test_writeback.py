"""Write-back refusals: the approval is final all the same, its outcome waits, one refusal
holds up no other outcome, and the retry writes each outcome once."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import ApprovalState, Outcome
from tests.fakes import EventFeed, MemoryTarget
from tests.unit.pipeline.support import (
    EXAMPLES,
    LEAVE,
    instance_of,
    leave,
    only,
    simulated_rig,
    submit,
)

A = ApprovalState


async def test_a_missing_business_row_holds_up_only_its_own_outcome() -> None:
    async with simulated_rig() as (rig, sim, _):
        for key in ("7", "8", "9"):
            submit(rig, key, leave())
        await rig.cycle()
        del rig.db.t.business["app.leave"]["8"]  # the application deleted its row
        for key in ("7", "8", "9"):
            sim.refuse(instance_of(only(rig, key)))
        await EventFeed(sim, rig.inbox).pump()
        await rig.apply.run_once()  # one batch: finished together, then 8 on its own
        assert {only(rig, k).state for k in ("7", "8", "9")} == {A.REJECTED}
        assert [only(rig, k).written_back_at is not None for k in ("7", "8", "9")] == [
            True,
            False,
            True,
        ]
        missing = only(rig, "8")
        assert missing.last_error_code == "writeback_failed"
        assert "app.leave: no row has key '8'" in (missing.last_error_message or "")
        assert all(e.processed_at is not None for e in rig.db.t.inbox.values())
        finished = rig.observer.of("approval_finished")
        assert sorted(w for *_, w in finished) == [False, True, True]
        rig.targets[LEAVE].add_row(rig.db, "8")  # the application puts it back
        await sim.advance(29)
        assert await rig.writeback.run_once() == 0  # first retry after writeback_retry
        await sim.advance(1)
        assert await rig.writeback.run_once() == 1
        assert missing.written_back_at is not None and missing.last_error_code is None
        for key in ("7", "8", "9"):
            assert rig.targets[LEAVE].row(rig.db, key)["writes"] == 1
        assert rig.db.notes(missing.id)[-1] == "written back to app.leave"


@EXAMPLES
@given(refusals=st.integers(0, 12), max_attempts=st.integers(1, 10))
async def test_a_refused_outcome_is_retried_every_five_minutes_up_to_max_attempts(
    refusals: int, max_attempts: int
) -> None:
    """The target refuses the first ``refusals`` writes (a trigger, a lock, a
    constraint), then takes them; the retry gives up after ``max_attempts`` writes."""
    async with simulated_rig() as (rig, sim, _):
        start = rig.clock.now()
        until = start + timedelta(seconds=300 * refusals - 150)  # the k-th write: 300 k s

        def refuse(outcome: Outcome) -> str | None:
            return "the row is locked" if rig.clock.now() < until else None

        rig.targets[LEAVE] = MemoryTarget("app.leave", refuse=refuse)
        rig.writeback.max_attempts = max_attempts
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        sim.terminate(instance_of(row))
        await EventFeed(sim, rig.inbox).pump()
        await rig.apply.run_once()
        assert row.state is A.CANCELED
        for _ in range(15):
            await sim.advance(300)
            await rig.writeback.run_once()
        written = refusals < max_attempts
        assert (row.written_back_at is not None) == written
        assert row.writeback_attempts == (refusals + 1 if written else max_attempts)
        assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == int(written)
        failures = [n for n in rig.db.notes(row.id) if n.startswith("write-back failed")]
        assert len(failures) == min(refusals, max_attempts)


async def test_a_retry_finds_the_outcome_written_meanwhile_and_writes_nothing() -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        del rig.db.t.business["app.leave"]["7"]
        sim.refuse(instance_of(row))
        await EventFeed(sim, rig.inbox).pump()
        await rig.apply.run_once()
        rig.targets[LEAVE].add_row(rig.db, "7")
        await sim.advance(30)
        [claimed] = await rig.writeback.store.claim_unwritten(
            10, rig.clock.now(), rig.clock.now(), 10
        )
        approval_id = claimed.id
        assert (
            await rig.writeback.store.write_back(approval_id, rig.clock.now(), rig.clock.now())
            is None
        )
        # A second replica's retry of the same claim (its lease ran out) writes nothing.
        assert (
            await rig.writeback.store.write_back(approval_id, rig.clock.now(), rig.clock.now())
            is None
        )
        assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == 1
        assert rig.db.t.notified == [row.id]

"""Polling, the safety net under lost events: quiet instances are read, less often the
older they are, and an outcome found so is finished like any other."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import ApprovalState, PollItem
from syncd.errors import DingTalkTransient
from syncd.pipeline.apply import Apply
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.track import Poll
from syncd.testing import FakeClock
from tests.fakes import (
    MemoryApplyStore,
    MemoryControlStore,
    MemoryDb,
    MemoryPollStore,
    ScriptedClient,
)
from tests.unit.pipeline.support import LEAVE, instance_of, leave, only, simulated_rig, submit

A = ApprovalState
SECONDS = st.floats(0, 10 * 86400)


@given(
    quiet=st.floats(10, 3600),
    longest=st.floats(60, 86400),
    since=st.tuples(SECONDS, st.none() | SECONDS, st.none() | SECONDS),
)
def test_the_poll_interval_grows_with_quiet_time_between_its_bounds(
    quiet: float, longest: float, since: tuple[float, float | None, float | None]
) -> None:
    """The quiet time counts from the last event, else the instance's creation, else
    the capture."""
    db, clock, client = MemoryDb(), FakeClock(), ScriptedClient()
    control = MemoryControlStore(db)
    apply = Apply(MemoryApplyStore(db, {}), client, clock, quiet_after=timedelta(seconds=quiet))
    poll = Poll(
        MemoryPollStore(db),
        control,
        Pauses(control),
        client,
        apply,
        clock,
        quiet_after=timedelta(seconds=quiet),
        max_interval=timedelta(seconds=longest),
        monthly_budget=1,
    )
    now = clock.now()
    captured, created, last_event = (
        None if s is None else now - timedelta(seconds=s) for s in since
    )
    assert captured is not None
    item = PollItem(1, LEAVE, "7", 1, "X", created, last_event, captured)
    quiet_for = (now - (last_event or created or captured)).total_seconds()
    expected = max(quiet, min(longest, quiet_for))
    assert abs(poll.interval(item).total_seconds() - expected) < 1e-6


async def test_a_poll_finds_the_outcome_whose_events_were_lost() -> None:
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        sim.approve(instance_of(row))
        sim.approve(instance_of(row), remark="fine")
        await sim.advance(59)
        await rig.cycle()
        assert row.state is A.RUNNING and client.count("get_instance") == 0
        await sim.advance(1)
        await rig.cycle()
        assert row.state is A.APPROVED and row.approver == "hr1" and row.remark == "fine"
        assert rig.observer.of("approval_finished") == [(LEAVE, "approved", "poll", True)]
        assert rig.db.t.tasks  # the instance's tasks and records, as read


async def test_a_running_instance_is_polled_again_later_and_a_failed_poll_soon() -> None:
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        await sim.advance(3600)
        await rig.poll.run_once()
        assert row.next_poll_at == rig.clock.now() + timedelta(seconds=3600)
        await sim.advance(3600)
        client.script("get_instance", DingTalkTransient("busy"))
        await rig.poll.run_once()
        assert row.next_poll_at == rig.clock.now() + rig.timing.quiet_after
        assert row.calls_spent == 4  # schema, create, two polls

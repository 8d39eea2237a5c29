"""Reconcile: a create whose outcome is unknown is adopted from DingTalk's list when it
happened, sent again when it did not, and never made twice."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.dingtalk.models import CreateInstanceRequest, FormComponentValue
from syncd.domain import ApprovalState
from syncd.errors import DingTalkOutcomeUnknown, DingTalkTransient
from syncd.pipeline.retry import RetryPolicy
from syncd.simulator import Simulator
from tests.fakes import Rig
from tests.unit.pipeline.support import (
    DEMO_KINDS,
    EXAMPLES,
    LEAVE,
    UNCORRELATED,
    decided_state,
    leave,
    only,
    simulated_rig,
    submit,
)

A = ApprovalState


def leave_request(days: int, key: str | None = None) -> CreateInstanceRequest:
    """A leave request made outside syncd by the same originator (``key``: the value in
    the correlation field)."""
    values = {
        "请假类型": "年假",
        '["开始时间","结束时间"]': '["2026-01-10", "2026-01-11"]',
        "天数": str(days),
        "请假事由": "rest",
    }
    if key is not None:
        values["业务编号"] = key
    return CreateInstanceRequest(
        process_code="PROC-SIM-LEAVE",
        originator_user_id="u1",
        dept_id=-1,
        form_component_values=[FormComponentValue(name=k, value=v) for k, v in values.items()],
    )


async def lose_next_create(rig: Rig, sim: Simulator) -> str:
    """Run the stages once with DingTalk making the instance but its answer lost; the
    instance made."""
    before = {i.instance_id for i in sim.instances()}
    sim.faults.update(create_response_lost_rate=1.0)
    await rig.cycle()
    sim.faults.update(create_response_lost_rate=0.0)
    [made] = [i.instance_id for i in sim.instances() if i.instance_id not in before]
    return made


@EXAMPLES
@given(
    correlated=st.booleans(),
    owned=st.integers(0, 3),
    foreign=st.integers(0, 3),
    decision=st.sampled_from([None, "approve", "refuse", "terminate"]),
    wait=st.floats(0, 600),
)
async def test_a_lost_create_is_adopted_from_the_list_and_never_made_twice(
    correlated: bool, owned: int, foreign: int, decision: str | None, wait: float
) -> None:
    """Around the lost one, syncd owns instances of the same originator and form values
    (other keys), and others were made outside syncd (another round's key in the
    correlation field, or other values); DingTalk may even have decided the lost one
    before reconcile finds it."""
    kinds = {LEAVE: DEMO_KINDS[LEAVE]} if correlated else UNCORRELATED
    async with simulated_rig(kinds) as (rig, sim, client):
        for n in range(owned):
            submit(rig, f"owned-{n}", leave())
        await rig.cycle()
        for n in range(foreign):
            request = leave_request(2, "syncd:leave/7/2") if correlated else leave_request(3 + n)
            await client.create_instance(request)
        submit(rig, "7", leave())
        made = await lose_next_create(rig, sim)
        row = only(rig, "7")
        assert row.state is A.UNKNOWN and row.last_error_code == "DingTalkOutcomeUnknown"
        if decision:
            getattr(sim, decision)(made)
        await sim.advance(wait)
        await rig.cycle()
        if wait < rig.timing.unknown_grace.total_seconds():
            assert row.state is A.UNKNOWN  # reconcile gives DingTalk time to settle
            await sim.advance(rig.timing.unknown_grace.total_seconds())
            await rig.cycle()
        assert row.instance_id == made
        assert len(sim.instances()) == owned + foreign + 1
        expected = decided_state(sim.instance(made)) or A.RUNNING
        assert row.state is expected
        assert rig.db.transitions(row.id)[2:4] == [
            ("submitting", "unknown"),
            ("unknown", "running"),
        ]
        if expected is not A.RUNNING:
            assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == 1
        others = {a.instance_id for a in rig.db.t.approvals.values() if a.business_key != "7"}
        assert len(others) == owned and made not in others


@pytest.mark.parametrize("correlated", [True, False])
async def test_a_create_that_never_reached_dingtalk_is_sent_again_once(correlated: bool) -> None:
    kinds = {LEAVE: DEMO_KINDS[LEAVE]} if correlated else UNCORRELATED
    async with simulated_rig(kinds) as (rig, sim, client):
        client.script("create_instance", DingTalkOutcomeUnknown("read timeout"))
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.UNKNOWN and sim.instances() == []
        await sim.advance(10)
        await rig.cycle()
        assert row.state is A.PENDING and row.last_error_code == "not_created"
        await rig.cycle()
        assert row.state is A.RUNNING and len(sim.instances()) == 1
        assert [t for _, t in rig.db.transitions(row.id)] == [
            "pending",
            "submitting",
            "unknown",
            "pending",
            "submitting",
            "running",
        ]


async def test_a_lost_create_never_found_goes_dead_once_attempts_are_spent() -> None:
    async with simulated_rig(retry=RetryPolicy(max_attempts=1)) as (rig, sim, client):
        client.script("create_instance", DingTalkOutcomeUnknown("read timeout"))
        submit(rig, "7", leave())
        await rig.cycle()
        await sim.advance(10)
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.DEAD and row.last_error_code == "not_created"
        assert sim.instances() == [] and client.count("create_instance") == 1


@EXAMPLES
@given(attempts=st.integers(1, 8), seed=st.integers(0, 2**32))
async def test_when_dingtalk_cannot_be_listed_it_stays_unknown_and_backs_off(
    attempts: int, seed: int
) -> None:
    retry = RetryPolicy(rng=random.Random(seed))
    async with simulated_rig(retry=retry) as (rig, sim, client):
        client.script("create_instance", DingTalkOutcomeUnknown("read timeout"))
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        client.script("list_instance_ids", *[DingTalkTransient("busy")] * attempts)
        for _ in range(attempts):
            await sim.advance((row.next_attempt_at - rig.clock.now()).total_seconds())
            before = rig.clock.now()
            await rig.reconcile.run_once()
            ceiling = min(retry.cap, retry.base * 2 ** (row.attempts - 1))
            assert row.state is A.UNKNOWN and row.last_error_message == "reconciling: busy"
            delay = (row.next_attempt_at - before).total_seconds()
            assert ceiling / 2 <= delay <= ceiling
        # A reconcile that found nothing yet is not a transition.
        assert rig.db.transitions(row.id)[-1] == ("submitting", "unknown")
        await sim.advance((row.next_attempt_at - rig.clock.now()).total_seconds())
        await rig.cycle()
        await rig.cycle()
        assert row.state is A.RUNNING and len(sim.instances()) == 1


@pytest.mark.parametrize("after_commit", [False, True])
async def test_a_replica_that_fails_after_its_create_leaves_it_to_another_replica(
    after_commit: bool,
) -> None:
    """The create reached DingTalk but recording it failed (the database went away, or
    its answer did): the approval is the other replica's once the lease is over, and it
    adopts the instance rather than making another."""
    async with simulated_rig() as (rig, sim, client):
        other = Rig(rig.db, rig.clock, client, rig.kinds, owner="replica-2", targets=rig.targets)
        submit(rig, "7", leave())
        rig.db.fail("record_created", after_commit=after_commit)
        await rig.cycle()
        row = only(rig, "7")
        [made] = [i.instance_id for i in sim.instances()]
        if after_commit:
            assert row.state is A.RUNNING and row.instance_id == made
            return
        assert row.state is A.SUBMITTING and row.lease_owner == "replica-1"
        await other.cycle()
        assert row.state is A.SUBMITTING  # the lease still holds
        await sim.advance(rig.timing.lease.total_seconds() + 1)
        await other.cycle()
        assert row.state is A.RUNNING and row.instance_id == made
        assert len(sim.instances()) == 1
        assert ("submitting", "unknown") in rig.db.transitions(row.id)


async def test_nothing_is_reconciled_while_dingtalk_calls_are_paused() -> None:
    async with simulated_rig() as (rig, sim, client):
        client.script("create_instance", DingTalkOutcomeUnknown("read timeout"))
        submit(rig, "7", leave())
        await rig.cycle()
        await rig.pauses.auth_failed(rig.clock.now(), "bad secret")
        await sim.advance(60)
        assert await rig.reconcile.run_once() == 0
        assert client.count("list_instance_ids") == 0
        await rig.pauses.resume()
        assert await rig.reconcile.run_once() == 1
        assert only(rig, "7").state is A.PENDING

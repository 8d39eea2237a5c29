"""Retries of creates: backoff doubling with jitter up to a cap, ``dead`` once the
attempts are spent; throttling waits the hinted time and costs no attempt."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import ApprovalState
from syncd.errors import (
    DingTalkNotSent,
    DingTalkThrottled,
    DingTalkTransient,
)
from syncd.pipeline.retry import RetryPolicy
from tests.unit.pipeline.support import EXAMPLES, LEAVE, leave, only, simulated_rig, submit

A = ApprovalState


def ceiling(policy: RetryPolicy, attempt: int) -> float:
    return min(policy.cap, policy.base * 2.0 ** max(attempt - 1, 0))


@given(
    base=st.floats(0.01, 600),
    cap=st.floats(0.01, 86400),
    attempt=st.integers(0, 200),
    seed=st.integers(0, 2**32),
)
def test_delays_double_from_the_base_up_to_the_cap_with_up_to_half_jitter(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(base=base, cap=cap, rng=random.Random(seed))
    highest = ceiling(policy, attempt)
    assert highest / 2 <= policy.delay(attempt) <= highest
    assert ceiling(policy, attempt + 1) == min(cap, 2 * highest) or attempt == 0


@given(max_attempts=st.integers(1, 1000), attempt=st.integers(0, 2000))
def test_attempts_are_spent_at_max_attempts(max_attempts: int, attempt: int) -> None:
    assert RetryPolicy(max_attempts=max_attempts).exhausted(attempt) == (attempt >= max_attempts)


@EXAMPLES
@given(
    max_attempts=st.integers(1, 6),
    seed=st.integers(0, 2**32),
    late=st.lists(st.floats(0, 3600), min_size=6, max_size=6),
)
async def test_a_failing_create_is_retried_with_backoff_then_parked_dead(
    max_attempts: int, seed: int, late: list[float]
) -> None:
    """Each attempt comes when it is due (or later: ``late`` seconds), never before."""
    policy = RetryPolicy(base=2.0, cap=30.0, max_attempts=max_attempts, rng=random.Random(seed))
    async with simulated_rig(retry=policy) as (rig, sim, client):
        client.script("create_instance", *[DingTalkTransient("busy")] * max_attempts)
        submit(rig, "7", leave())
        await rig.ingest.run_once()
        row = only(rig, "7")
        for attempt in range(1, max_attempts + 1):
            if attempt > 1:
                due = (row.next_attempt_at - rig.clock.now()).total_seconds()
                await sim.advance(due - 0.001)
                assert await rig.submit.run_once() == 0  # not due yet
                await sim.advance(0.001 + late[attempt - 1])
            failed_at = rig.clock.now()
            assert await rig.submit.run_once() == 1
            assert row.attempts == attempt and client.count("create_instance") == attempt
            if attempt < max_attempts:
                assert row.state is A.PENDING and row.last_error_code == "DingTalkTransient"
                delay = (row.next_attempt_at - failed_at).total_seconds()
                assert ceiling(policy, attempt) / 2 <= delay <= ceiling(policy, attempt)
        assert row.state is A.DEAD and sim.instances() == []
        assert rig.observer.of("approval_parked") == [(LEAVE, "dead", "DingTalkTransient")]
        await sim.advance(86400)
        assert await rig.submit.run_once() == 0  # a dead approval waits for a person


@EXAMPLES
@given(waits=st.lists(st.floats(0.5, 120), min_size=1, max_size=20))
async def test_throttling_waits_the_hinted_time_and_costs_no_attempt(waits: list[float]) -> None:
    async with simulated_rig(retry=RetryPolicy(max_attempts=2)) as (rig, sim, client):
        client.script("create_instance", *[DingTalkThrottled("slow", retry_after=w) for w in waits])
        submit(rig, "7", leave())
        await rig.ingest.run_once()
        row = only(rig, "7")
        for wait in waits:
            await rig.submit.run_once()
            assert row.state is A.PENDING and row.attempts == 0
            assert row.next_attempt_at == row.updated_at + timedelta(seconds=wait)
            await sim.advance(wait)
        await rig.submit.run_once()
        assert row.state is A.RUNNING and row.attempts == 1


async def test_a_create_kept_back_for_its_lease_is_tried_again_at_once_for_free() -> None:
    async with simulated_rig() as (rig, _, client):
        client.script("create_instance", DingTalkNotSent("paced past the lease"))
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.PENDING and row.attempts == 0
        assert row.next_attempt_at == rig.clock.now()
        await rig.cycle()
        assert row.state is A.RUNNING


async def test_a_schema_that_cannot_be_read_is_retried_with_backoff() -> None:
    async with simulated_rig() as (rig, sim, client):
        client.script("get_form_schema", DingTalkTransient("busy"))
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.PENDING and row.attempts == 1
        assert client.count("create_instance") == 0
        await sim.advance((row.next_attempt_at - rig.clock.now()).total_seconds())
        await rig.cycle()
        assert row.state is A.RUNNING

"""Events a replica stores for its own apply (``PostgresInbox`` with ``HeldEvents``):
stored leased, handed over in memory exactly as a claim would read them back, skipped by
every claim while the lease lasts, claimable at once when given back, and claimed as
before when the replica has no room or dies."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.db.apply_store import PostgresApplyStore
from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.events import make_event
from syncd.held import HeldEvents
from syncd.testing import FakeClock
from tests.integration.dingtalk.test_inbox import TEXTS, VALUES

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _event(payload: dict[str, Any], event_type: str = "bpms_task_change") -> Any:
    return make_event("stream", event_type, payload, f"e-{uuid.uuid4()}")


def _task(n: int) -> Any:
    return _event({"processInstanceId": f"inst-{n}", "type": "start", "taskId": n})


async def _claim(pool: Any, clock: FakeClock, limit: int = 100) -> list[Any]:
    store = PostgresApplyStore(pool, {})
    return await store.claim_inbox(limit, clock.now(), clock.now() + timedelta(minutes=5))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra=st.dictionaries(TEXTS, VALUES, max_size=4),
    instance=TEXTS.filter(bool),
    event_type=st.sampled_from(["bpms_task_change", "bpms_instance_change", "user_leave_org"]),
)
async def test_a_held_event_is_what_a_claim_would_read_back(
    pool: Any, extra: dict[str, Any], instance: str, event_type: str
) -> None:
    """Any payload (NUL, NaN, any text): the event handed over in memory equals the row
    as a claim reads it once the lease has ended, every field but the attempt count; no
    claim sees it before."""
    clock = FakeClock(NOW)
    held = HeldEvents(clock, lease=LEASE)
    inbox = PostgresInbox(pool, held)
    event = _event({**extra, "processInstanceId": instance, "type": "finish"}, event_type)
    assert await inbox.put_many([event, event]) == [True, False]
    [item] = held.take(10)
    assert item.attempts == 1
    assert item.id not in {i.id for i in await _claim(pool, clock)}
    clock.advance(seconds=LEASE.total_seconds())
    claimed = {i.id: i for i in await _claim(pool, clock)}
    assert claimed[item.id] == replace(item, attempts=2)


async def test_held_events_are_left_to_the_claim_once_their_lease_ends(pool: Any) -> None:
    """A replica that died (its memory gone) or took too long: after the lease, any
    claim takes the events, and the held copies are not handed over any more."""
    clock = FakeClock(NOW)
    held = HeldEvents(clock, lease=LEASE)
    inbox = PostgresInbox(pool, held)
    await inbox.put_many([_task(1), _task(2)])
    clock.advance(seconds=29)
    assert await _claim(pool, clock) == []
    clock.advance(seconds=1)
    assert [i.attempts for i in await _claim(pool, clock)] == [2, 2]
    assert held.take(10) == []


async def test_leases_given_back_make_the_events_due_at_once(pool: Any) -> None:
    clock = FakeClock(NOW)
    held = HeldEvents(clock, lease=LEASE)
    inbox = PostgresInbox(pool, held)
    await inbox.put_many([_task(1), _task(2), _task(3)])
    [first] = held.take(1)  # being applied: its lease stays
    await inbox.release()
    assert len(held) == 0
    claimed = await _claim(pool, clock)
    assert [i.attempts for i in claimed] == [1, 1]
    assert first.id not in {i.id for i in claimed}


async def test_a_burst_that_does_not_fit_is_stored_for_any_claim(pool: Any) -> None:
    clock = FakeClock(NOW)
    held = HeldEvents(clock, lease=LEASE, capacity=2)
    inbox = PostgresInbox(pool, held)
    await inbox.put_many([_task(1), _task(2)])
    await inbox.put_many([_task(3)])
    assert len(held) == 2
    [claimed] = await _claim(pool, clock)
    assert claimed.payload["taskId"] == 3 and claimed.attempts == 1


async def test_leases_that_cannot_be_given_back_are_left_to_end(pool: Any, caplog: Any) -> None:
    """The database gone at the stop: a warning, no failure; the leases end on their own."""
    held = HeldEvents(FakeClock(NOW), lease=LEASE)
    inbox = PostgresInbox(pool, held)
    await inbox.put_many([_task(1), _task(2)])
    await pool.close()
    await inbox.release()
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "held_release"]
    assert record.levelname == "WARNING" and getattr(record, "count", 0) == 2
    assert len(held) == 0

"""``HeldEvents``: what a replica stored for its own apply, taken in id order, never past
its lease, never more than it has room for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.domain import InboxItem
from syncd.held import HeldEvents
from syncd.testing import FakeClock

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _item(n: int) -> InboxItem:
    return InboxItem(n, "stream", "bpms_task_change", f"i-{n}", {}, T0, 1)


def test_a_burst_that_does_not_fit_gets_no_lease() -> None:
    held = HeldEvents(FakeClock(T0), lease=timedelta(seconds=30), capacity=3)
    until = held.lease_for(2)
    assert until == T0 + timedelta(seconds=30)
    held.hold([_item(1), _item(2)], until)
    assert held.lease_for(2) is None and held.lease_for(1) is not None


def test_events_are_taken_in_id_order_up_to_the_limit() -> None:
    clock = FakeClock(T0)
    held = HeldEvents(clock)
    held.hold([_item(5), _item(2)], T0 + timedelta(seconds=30))
    held.hold([_item(3)], T0 + timedelta(seconds=30))
    assert [i.id for i in held.take(2)] == [2, 3]
    assert [i.id for i in held.take(0)] == [] and len(held) == 1
    assert held.release() == [5] and len(held) == 0


@given(
    steps=st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 40), st.integers(0, 8)),
        min_size=1,
        max_size=12,
    )
)
def test_an_event_is_taken_at_most_once_and_only_while_its_lease_lasts(
    steps: list[tuple[int, int, int]],
) -> None:
    """Bursts held at drawn times, taken at drawn limits: every event taken was held, is
    taken once, in id order within a take, before its lease ended; what is not taken is
    either still held or was let go once its lease ended."""
    clock = FakeClock(T0)
    held = HeldEvents(clock, lease=timedelta(seconds=30), capacity=12)
    leases: dict[int, datetime] = {}
    taken: list[int] = []
    next_id = 1
    for size, seconds, limit in steps:
        clock.advance(seconds=seconds)
        until = held.lease_for(size)
        if until is not None:
            items = [_item(n) for n in range(next_id, next_id + size)]
            held.hold(items, until)
            leases.update((i.id, until) for i in items)
        next_id += size
        assert len(held) <= 12
        got = [i.id for i in held.take(limit)]
        assert got == sorted(got) and len(got) <= limit
        assert all(clock.now() < leases[i] for i in got)
        taken += got
    assert len(taken) == len(set(taken))
    left = set(held.release())
    assert left.isdisjoint(taken) and left | set(taken) <= set(leases)
    let_go = set(leases) - left - set(taken)
    assert all(leases[i] <= clock.now() for i in let_go)

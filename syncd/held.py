"""Events a replica stored and leased at once, for its apply stage to take from memory.

An event apply has to claim is written three times: stored, claimed (the claim pushes
``next_attempt_at`` forward as a lease and counts the attempt) and marked processed. A
replica that stores a burst (Stream frames, a failed-push sweep) is about to apply it
anyway, so the insert takes the lease itself (``next_attempt_at`` a short while ahead,
``attempts`` 1) and hands the rows to :class:`HeldEvents`: one write fewer per event,
and no claim to read the rows back. Every claim, this replica's included, skips them
while the lease lasts. If the replica dies, the lease ends and any replica claims them,
as after a claim's lease; a held event whose lease ended before apply took it is left to
the claim, and a replica that stops cleanly gives its leases back
(``release_inbox_events``). When the replica holds ``capacity`` events already, a burst
is stored without a lease, to be claimed as before (bursts stored at the same moment may
pass that bound by one burst each).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from syncd.domain import InboxItem
from syncd.ports import Clock

#: How long a held event's lease lasts (the App takes ``pipeline.lease_seconds`` if
#: shorter): apply takes it on its next pass.
HELD_LEASE = timedelta(seconds=30)
#: Held events at most (a few passes of apply at its largest batch).
HELD_CAPACITY = 4000


class HeldEvents:
    """The events this replica stored with a lease and has not applied yet."""

    def __init__(
        self, clock: Clock, *, lease: timedelta = HELD_LEASE, capacity: int = HELD_CAPACITY
    ) -> None:
        self._clock = clock
        self._lease = lease
        self._capacity = capacity
        self._held: dict[int, tuple[InboxItem, datetime]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def lease_for(self, count: int) -> datetime | None:
        """When a lease on ``count`` events stored now ends; None when they do not fit."""
        if len(self._held) + count > self._capacity:
            return None
        return self._clock.now() + self._lease

    def hold(self, items: Iterable[InboxItem], until: datetime) -> None:
        """Keep ``items`` (stored with a lease until ``until``) for apply."""
        for item in items:
            self._held[item.id] = (item, until)

    def take(self, limit: int) -> list[InboxItem]:
        """Up to ``limit`` held events, in id order. Those whose lease ended are left to
        the claim (their rows are due, and another replica may have them already)."""
        now = self._clock.now()
        for gone in [i for i, (_, until) in self._held.items() if until <= now]:
            del self._held[gone]
        taken = sorted(self._held)[: max(0, limit)]
        return [self._held.pop(i)[0] for i in taken]

    def release(self) -> list[int]:
        """Forget every held event; returns their ids, whose leases should be given back."""
        ids = sorted(self._held)
        self._held.clear()
        return ids

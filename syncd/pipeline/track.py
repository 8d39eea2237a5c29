"""Track: learn outcomes that events did not bring.

Events (Stream, callbacks) land in the inbox through the DingTalk adapters; this module
holds the two safety nets that make result capture impossible to stop silently: a poller
that reads only instances quiet for too long — its interval growing with their age and
its calls capped by a monthly budget — and a sweeper of DingTalk's failed-push list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from syncd.dingtalk.events import InboundEvent
from syncd.domain import ApprovalRef, ApprovalState, CallRecord, PollItem
from syncd.errors import DingTalkAuthError, DingTalkError, DingTalkQuotaExhausted
from syncd.pipeline.apply import Apply
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.pauses import Pauses
from syncd.ports import ApprovalClient, Clock, ControlStore, InboxWriter, PollStore
from syncd.quota import PollingBudget as PollingBudget

logger = logging.getLogger(__name__)


class Poll:
    def __init__(
        self,
        store: PollStore,
        control: ControlStore,
        pauses: Pauses,
        client: ApprovalClient,
        apply: Apply,
        clock: Clock,
        *,
        quiet_after: timedelta,
        max_interval: timedelta,
        monthly_budget: int | PollingBudget,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.lease = lease  # how long a replica that died keeps its claimed polls
        self.control = control
        self.pauses = pauses
        self.client = client
        self.apply = apply
        self.clock = clock
        self.quiet_after = quiet_after
        self.max_interval = max_interval
        # an int: that many calls a month; a PollingBudget: within the monthly quota too
        self.budget = (
            monthly_budget
            if isinstance(monthly_budget, PollingBudget)
            else PollingBudget(monthly_budget)
        )
        self.batch_size = batch_size
        self.budget_exhausted = False

    def interval(self, item: PollItem) -> timedelta:
        """Poll young instances after ``quiet_after``; older ones less often."""
        since = item.last_event_at or item.instance_created_at or item.captured_at
        age = self.clock.now() - since
        return max(self.quiet_after, min(self.max_interval, age))

    async def run_once(self) -> int:
        now = self.clock.now()
        if await self.pauses.active(now):
            return 0
        left = self.budget.left(await self.control.usage(now), now)
        self.budget_exhausted = left <= 0
        if self.budget_exhausted:
            return 0
        items = await self.store.claim_polls(min(self.batch_size, left), now, now + self.lease)
        for item in items:
            await self.poll_one(item)
        return len(items)

    async def poll_one(self, item: PollItem) -> None:
        calls: list[CallRecord] = []
        ref = ApprovalRef(
            id=item.id,
            kind=item.kind,
            business_key=item.business_key,
            round=item.round,
            state=ApprovalState.RUNNING,
            instance_id=item.instance_id,
            instance_created_at=item.instance_created_at,
        )
        try:
            instance = await call(calls, "get", "poll", self.client.get_instance(item.instance_id))
        except DingTalkError as exc:
            now = self.clock.now()
            if isinstance(exc, DingTalkQuotaExhausted):
                await self.pauses.quota_exhausted(now)
            elif isinstance(exc, DingTalkAuthError):
                await self.pauses.auth_failed(now, exc.message)
            await self.store.set_next_poll(ref, now + self.quiet_after, calls, now)
            return
        final = final_from_instance(instance)
        tasks = tasks_from_instance(instance)
        if final is None:
            # Still running: its tasks as DingTalk has them now (where it waits, for whom,
            # the tasks' links) correct what lost task events left out of its progress.
            now = self.clock.now()
            await self.store.set_next_poll(ref, now + self.interval(item), calls, now, tasks)
            return
        await self.apply.finish(ref, final, calls=calls, tasks=tasks, channel="poll")


class FailedEventSource(Protocol):
    """DingTalk's list of events it could not push (contract §9.7)."""

    async def failed_events(self) -> tuple[Sequence[InboundEvent], bool]:
        """A batch of failed events and whether more remain."""
        ...


#: The longest wait between two sweeps of DingTalk's failed-push list (and at most
#: :data:`MAX_SWEEP_FACTOR` times the configured interval).
MAX_SWEEP_INTERVAL = timedelta(hours=1)
MAX_SWEEP_FACTOR = 12


class SweepFailed:
    """Moves DingTalk's failed-push list into the inbox, where apply picks it up.

    Every read is a metered call and the list is nearly always empty (DingTalk lists an
    event only after three failed pushes), so :meth:`run_due` waits twice as long after
    each sweep that found nothing, up to twelve intervals (an hour at most), and goes back to
    the base interval after one that found events: a month of empty sweeps costs about
    720 calls instead of 8,640 at five minutes.
    """

    def __init__(
        self, source: FailedEventSource, inbox: InboxWriter, control: ControlStore, clock: Clock
    ) -> None:
        self.source = source
        self.inbox = inbox
        self.control = control
        self.clock = clock
        self._wait = timedelta(0)
        self._next: datetime | None = None

    async def run_due(self, interval: float) -> int:
        """Sweep if the backoff allows it (called every ``interval`` seconds)."""
        base, now = timedelta(seconds=interval), self.clock.now()
        if self._next is not None and now < self._next:
            return 0
        stored = await self.run_once()
        longest = min(MAX_SWEEP_INTERVAL, base * MAX_SWEEP_FACTOR)
        empty = max(min(self._wait * 2, longest), base)
        self._wait = base if stored else empty
        self._next = now + self._wait - base / 2  # the schedule's jitter is not a skip
        return stored

    async def run_once(self) -> int:
        stored = 0
        for _ in range(50):  # at most 10,000 events per sweep
            events, more = await self.source.failed_events()
            await self.control.add_usage(self.clock.now(), "failed_list")
            for event in events:
                stored += int(await self.inbox.put(event))
            if not more:
                break
        if stored:
            logger.info(
                "failed pushes recovered", extra={"action": "failed_list_swept", "events": stored}
            )
        return stored

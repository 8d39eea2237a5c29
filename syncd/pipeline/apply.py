"""Apply: events from the inbox move approvals forward and write outcomes back.

``finish`` and ``terminate`` instance events are final (they arrive over authenticated
channels); a ``finish`` without a usable result is confirmed with a GET. Task events
record who did what. When a kind's write-back uses who decided or the last remark, the
instance is read before a final event is written back: events cannot tell them for sure
(a task event may be late, lost, or held by a replica that died). Duplicate and
late events change nothing: the store only moves an approval from a state that may move.
An event for an instance syncd does not know yet (its create response may still be on
the way) is retried for a while, then dropped with a note. Every other event (contact
changes, contract §16) goes to :class:`~syncd.pipeline.directory_events.DirectoryEvents`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from syncd.dingtalk.events import APPROVAL_EVENTS
from syncd.domain import ApprovalRef, CallRecord, Final, FinishResult, InboxItem, TaskRecord
from syncd.errors import DingTalkError
from syncd.held import HeldEvents
from syncd.logging import approval_fields
from syncd.pipeline.calls import call
from syncd.pipeline.directory_events import DirectoryEvents
from syncd.pipeline.outcomes import (
    final_from_event,
    final_from_instance,
    instance_url,
    needs_confirmation,
    needs_reading,
    task_from_event,
    tasks_from_instance,
)
from syncd.ports import (
    ApplyStore,
    ApprovalClient,
    Clock,
    NullObserver,
    Observer,
)

logger = logging.getLogger(__name__)

UNMATCHED_PATIENCE = timedelta(hours=1)
#: A final event whose instance still reads as running is read again this often, this
#: many times, before the event's word is taken alone.
READ_LAG_DELAY = timedelta(seconds=5)
READ_LAG_ATTEMPTS = 6

#: A batch of ``batch_size`` claims this many events per approval: each approval brings
#: several (instance start and finish, a start and a finish per approver task).
EVENTS_PER_APPROVAL = 8
#: A task change is written to the business row this long after the first change not yet
#: written: the other changes of a burst (one approver's finish, the next one's start)
#: are written with it, in one write.
PROGRESS_COALESCE = timedelta(seconds=1)


def _final(item: InboxItem) -> Final | None:
    """DingTalk's final word, if the event says it plainly (no GET needed)."""
    if item.event_type == "bpms_task_change":
        return None
    return final_from_event(item.payload)


def _split(items: list[InboxItem]) -> tuple[list[InboxItem], list[InboxItem]]:
    """The approval events, and the others (contact changes, for the directory)."""
    others = [item for item in items if item.event_type not in APPROVAL_EVENTS]
    return [item for item in items if item.event_type in APPROVAL_EVENTS], others


def _progress_only(item: InboxItem) -> bool:
    """Whether the event only shows the instance alive: no decision, no GET to confirm."""
    if item.event_type == "bpms_task_change":
        return True
    return final_from_event(item.payload) is None and not needs_confirmation(item.payload)


class Apply:
    def __init__(
        self,
        store: ApplyStore,
        client: ApprovalClient,
        clock: Clock,
        *,
        quiet_after: timedelta,
        writeback_retry: timedelta = timedelta(seconds=30),
        batch_size: int = 100,
        lease: timedelta = timedelta(minutes=5),
        needs: Mapping[str, frozenset[str]] | None = None,
        observer: Observer | None = None,
        progress_coalesce: timedelta = PROGRESS_COALESCE,
        directory: DirectoryEvents | None = None,
        held: HeldEvents | None = None,
    ) -> None:
        """``needs`` maps a kind to the outcome fields its write-back uses; ``directory``
        takes the events that are not approval events (without it they are dropped);
        ``held``: the events this replica stored for itself, taken with each claim."""
        self.directory = directory
        self.held = held
        #: Queues an unknown instance of an inbound kind (``Inbound.intake``; set by the App).
        self.intake: Callable[[InboxItem], Awaitable[bool]] | None = None
        self.progress_coalesce = progress_coalesce
        self.observer = observer or NullObserver()
        self.store = store
        self.client = client
        self.clock = clock
        self.needs = needs or {}
        self.quiet_after = quiet_after
        self.writeback_retry = writeback_retry
        self.batch_size = batch_size
        self.lease = lease  # how long a replica that died keeps its claimed events
        #: The last claim took a full batch: more events are waiting than one pass takes.
        self.behind = False

    async def run_once(self) -> int:
        """Apply a batch of events: approval events first, then (when a directory is
        given) the others, so that a leave finds the tasks the batch just started."""
        now = self.clock.now()
        limit = self.batch_size * EVENTS_PER_APPROVAL
        waiting = len(self.held) if self.held is not None else 0
        items = []  # claimed first: if the claim fails, the held events stay held
        if waiting < limit:
            items = await self.store.claim_inbox(limit - waiting, now, now + self.lease)
        if self.held is not None:
            items = sorted(items + self.held.take(limit - len(items)), key=lambda i: i.id)
        self.behind = len(items) >= limit
        if self.directory is None:
            await self._approval_events(items, now)
            return len(items)
        approvals, others = _split(items)
        await self._approval_events(approvals, now)
        if others:
            await self.directory.handle(others)
        return len(items)

    async def _approval_events(self, items: list[InboxItem], now: datetime) -> None:
        """The approvals are looked up at once, events that only show progress (task
        changes, instance start) are recorded together in one transaction, then each
        remaining event is applied on its own, in order."""
        if not items:
            return
        refs = await self.store.approvals_by_instances(
            [item.instance_id for item in items if item.instance_id]
        )
        progress: list[tuple[ApprovalRef, list[TaskRecord], int]] = []
        urls: dict[int, str] = {}
        finals: dict[int, tuple[ApprovalRef, Final, InboxItem]] = {}
        final_items: list[tuple[ApprovalRef, InboxItem]] = []
        rest: list[InboxItem] = []
        for item in items:
            approval = refs.get(item.instance_id) if item.instance_id else None
            final = _final(item)
            if approval is not None and _progress_only(item):
                tasks = (
                    [task_from_event(item.payload)] if item.event_type == "bpms_task_change" else []
                )
                progress.append((approval, tasks, item.id))
                if not tasks and (url := instance_url(item.payload)):
                    urls[approval.id] = url
            elif approval is not None and final is not None:
                finals.setdefault(approval.id, (approval, final, item))  # the first one wins
                final_items.append((approval, item))
            else:
                rest.append(item)
        reads = {a for a, (ref, f, _) in finals.items() if needs_reading(f, self._needs(ref))}
        if reads:
            rest = [item for a, item in final_items if a.id in reads] + rest
            final_items = [(a, item) for a, item in final_items if a.id not in reads]
            finals = {a: f for a, f in finals.items() if a not in reads}
        if progress:
            await self._progress(progress, urls, finals, now)
        if finals:
            await self._finish_all(list(finals.values()), final_items)
        for item in rest:
            approval = refs.get(item.instance_id) if item.instance_id else None
            # A duplicate reads too: if the first read failed and was deferred, the
            # duplicate must not finish the approval on the event's word alone.
            await self._apply(item, approval, read=approval is not None and approval.id in reads)

    async def _progress(
        self,
        progress: list[tuple[ApprovalRef, list[TaskRecord], int]],
        urls: dict[int, str],
        finals: dict[int, tuple[ApprovalRef, Final, InboxItem]],
        now: datetime,
    ) -> None:
        """Record the events that only show progress, in one transaction. An approval the
        batch also finishes (its approver's task ended with it) gets its tasks and its
        link, but its row is rewritten once, by the finish: its final takes the link."""
        # Approval order (stable, so each approval's events keep theirs): replicas
        # touching the same approvals lock them in the same order.
        progress.sort(key=lambda touch: touch[0].id)
        await self.store.touch_many(
            [(approval, tasks) for approval, tasks, _ in progress],
            now,
            next_poll_at=now + self.quiet_after,
            inbox_ids=[inbox_id for _, _, inbox_id in progress],
            urls=urls,
            progress_due=now + self.progress_coalesce,
            finishing=finals.keys(),
        )
        for approval_id, (approval, final, item) in finals.items():
            if final.url is None and approval_id in urls:
                finals[approval_id] = (approval, replace(final, url=urls[approval_id]), item)

    def _needs(self, approval: ApprovalRef) -> frozenset[str]:
        return self.needs.get(approval.kind, frozenset())

    async def _finish_all(
        self,
        finals: list[tuple[ApprovalRef, Final, InboxItem]],
        items: list[tuple[ApprovalRef, InboxItem]],
    ) -> None:
        """Finish approvals together (in id order), their events (``items``, duplicates
        included) marked processed with them. If a write-back fails nothing was done, and
        the events are applied one by one: each failure is recorded with its approval."""
        finals.sort(key=lambda f: f[0].id)
        done = await self.store.finish_many(
            [(approval, final) for approval, final, _ in finals],
            self.clock.now(),
            inbox_ids=[item.id for _, item in items],
        )
        if done is None:
            for approval, item in items:
                await self._apply(item, approval, read=False)
            return
        for approval, final, item in finals:
            result = done.get(approval.id)
            if result is not None:
                self._finished(approval, final, result, item.channel)

    async def _apply(self, item: InboxItem, approval: ApprovalRef | None, *, read: bool) -> None:
        """Apply one event; ``read``: read the instance before a final event is applied."""
        now = self.clock.now()
        if not item.instance_id:
            await self.store.drop_inbox([item.id], now, "event without processInstanceId")
            return
        if approval is None:
            await self._unmatched(item)
            return
        if item.event_type == "bpms_task_change":
            await self.store.touch(
                approval,
                now,
                next_poll_at=now + self.quiet_after,
                tasks=[task_from_event(item.payload)],
                inbox_ids=[item.id],
                progress_due=now + self.progress_coalesce,
            )
            return
        calls: list[CallRecord] = []
        tasks: list[TaskRecord] = []
        said = final_from_event(item.payload)
        final = said
        if (said is None and needs_confirmation(item.payload)) or (said is not None and read):
            read_back = await self._read(item, said, calls)
            if read_back is None:
                return
            final, tasks = read_back
        if final is None:
            await self.store.touch(
                approval,
                now,
                next_poll_at=now + self.quiet_after,
                tasks=tasks,
                inbox_ids=[item.id],
                calls=calls,
                url=instance_url(item.payload),
                progress_due=now + self.progress_coalesce,
            )
            return
        await self.finish(
            approval, final, inbox_ids=[item.id], calls=calls, tasks=tasks, channel=item.channel
        )

    async def _read(
        self, item: InboxItem, said: Final | None, calls: list[CallRecord]
    ) -> tuple[Final | None, list[TaskRecord]] | None:
        """Read the instance an event is about: DingTalk's final word (with what the event
        said that a GET does not) and its tasks; ``None`` when the event was deferred."""
        now = self.clock.now()
        assert item.instance_id is not None
        try:
            instance = await call(
                calls, "get", "confirm", self.client.get_instance(item.instance_id)
            )
        except DingTalkError as exc:
            await self.store.defer_inbox(item.id, now + timedelta(seconds=30), str(exc))
            return None
        final, tasks = final_from_instance(instance), tasks_from_instance(instance)
        if final is None and said is not None:
            # DingTalk's read lags its event: read again shortly, then trust the event.
            if item.attempts < READ_LAG_ATTEMPTS:
                await self.store.defer_inbox(
                    item.id, now + READ_LAG_DELAY, "instance not final yet in a GET"
                )
                return None
            return said, tasks
        if final is not None and said is not None:
            # milliseconds, not minutes; and the instance's link, which a GET has not
            final = replace(final, finished_at=said.finished_at or final.finished_at, url=said.url)
        return final, tasks

    async def finish(
        self,
        approval: ApprovalRef,
        final: Final,
        *,
        inbox_ids: list[int] | None = None,
        calls: list[CallRecord] | None = None,
        tasks: list[TaskRecord] | None = None,
        channel: str = "",
    ) -> bool:
        now = self.clock.now()
        result = await self.store.finish(
            approval,
            final,
            now,
            inbox_ids=inbox_ids or [],
            calls=calls or [],
            tasks=tasks or [],
            retry_at=now + self.writeback_retry,
        )
        if result.moved:
            self._finished(approval, final, result, channel)
        return result.moved

    def _finished(
        self, approval: ApprovalRef, final: Final, result: FinishResult, channel: str
    ) -> None:
        decided = final.finished_at or self.clock.now()
        created = approval.instance_created_at
        self.observer.approval_finished(
            approval.kind,
            final.state.value,
            channel,
            written=result.written,
            seconds_since_decision=max(0.0, (self.clock.now() - decided).total_seconds()),
            calls_spent=result.calls_spent,
            seconds_to_decision=None
            if created is None
            else max(0.0, (decided - created).total_seconds()),
        )
        logger.info(
            "approval finished",
            extra={
                "action": "writeback_done" if result.written else "writeback_failed",
                **approval_fields(approval),
                "state": final.state.value,
                "channel": channel,
                "error": result.error,
            },
        )

    async def _unmatched(self, item: InboxItem) -> None:
        if self.intake is not None:
            await self.intake(item)  # imported meanwhile, the event then applies to it
        now = self.clock.now()
        if now - item.received_at > UNMATCHED_PATIENCE:
            await self.store.drop_inbox(
                [item.id], now, f"no approval has instance {item.instance_id}; not created by syncd"
            )
            return
        delay = timedelta(seconds=min(60.0, 2.0 * item.attempts))
        await self.store.defer_inbox(item.id, now + delay, "instance not known yet")

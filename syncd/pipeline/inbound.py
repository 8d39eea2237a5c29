"""Inbound: instances started in DingTalk become business rows (inbound kinds).

Instances are learned three ways, all into one queue: a ``start`` (or any) event for an
inbound kind's process code that syncd does not know (:meth:`Inbound.intake`, called by
apply), the listing over a trailing window (:class:`~syncd.pipeline.inbound_list.Listing`)
and ``syncd backfill``. Each queued instance is read (a GET, paced and counted) and
imported: its business row and syncd's round in one transaction (``InboundStore``), then,
if the GET showed it final, finished like any round. While a create for the same process
code is in doubt, the instance may be that create's: it waits until no create is, and is
looked up again (contract §20.2). A row the business table refuses parks the instance (an
``invalid`` round naming the instance, component and column); nothing else waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Protocol

from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalRef, CallRecord, Final, InboxItem, TaskRecord
from syncd.errors import DingTalkAuthError, DingTalkError, DingTalkQuotaExhausted
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import ApprovalClient, Clock, ControlStore, Observer
from syncd.ports.inbound import Imported, ImportItem, ImportRefused, InboundStore

logger = logging.getLogger(__name__)

#: How soon an instance that may be an in-doubt create's is looked at again.
IN_DOUBT_DELAY = timedelta(seconds=5)
PURPOSE = "import"

#: Finishes an imported round the GET showed final (``Apply.finish``).
Finisher = Callable[..., Awaitable[bool]]


class InboundObserver(Protocol):
    """What the inbound stage reports (``syncd.metrics.inbound.InboundMetrics``)."""

    def imported(self, kind: str, outcome: str) -> None:
        """``outcome``: imported, known, parked, deferred."""


class _Unobserved:
    def imported(self, kind: str, outcome: str) -> None:
        pass


def imported_from(item: ImportItem, instance: ProcessInstance) -> Imported:
    """The instance a GET read, as an import writes it."""
    form: dict[str, str] = {}
    for value in instance.form_component_values:
        if value.name is not None and value.name not in form:
            form[value.name] = value.value or ""
    return Imported(
        kind=item.kind,
        instance_id=item.instance_id,
        process_code=item.process_code,
        business_id=instance.business_id,
        title=instance.title,
        originator=instance.originator_user_id,
        originator_dept_id=instance.originator_dept_id,
        created_at=instance.create_time,
        form=form,
    )


class Inbound:
    def __init__(
        self,
        store: InboundStore,
        control: ControlStore,
        pauses: Pauses,
        client: ApprovalClient,
        clock: Clock,
        retry: RetryPolicy,
        *,
        kinds: Mapping[str, str],
        finish: Finisher,
        owner: str,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=5),
        observer: Observer | None = None,
        inbound_observer: InboundObserver | None = None,
    ) -> None:
        """``kinds`` maps each inbound process code to its kind."""
        self.store = store
        self.control = control
        self.pauses = pauses
        self.client = client
        self.clock = clock
        self.retry = retry
        self.kinds = dict(kinds)
        self.finish = finish
        self.owner = owner
        self.batch_size = batch_size
        self.lease = lease
        self.observer = observer
        self.metrics: InboundObserver = inbound_observer or _Unobserved()

    async def intake(self, item: InboxItem) -> bool:
        """Queue the instance of an event syncd does not know, if its process code is an
        inbound kind's (whatever the event: a lost ``start`` must not lose the instance)."""
        payload = item.payload if isinstance(item.payload, dict) else {}
        kind = self.kinds.get(str(payload.get("processCode") or ""))
        if kind is None or not item.instance_id:
            return False
        code = str(payload["processCode"])
        await self.store.queue(kind, code, [item.instance_id], "event", self.clock.now())
        return True

    async def run_once(self) -> int:
        now = self.clock.now()
        if not self.kinds or await self.pauses.active(now):
            return 0
        items = await self.store.claim(self.batch_size, now, self.owner, now + self.lease)
        for item in items:
            await self.import_one(item)
        return len(items)

    async def import_one(self, item: ImportItem) -> None:
        now = self.clock.now()
        if await self.store.creates_in_doubt(item.process_code):
            await self.store.release(
                item, self.owner, now + IN_DOUBT_DELAY,
                "a create for this process code is in doubt: it may be this instance",
            )  # fmt: skip
            self.metrics.imported(item.kind, "deferred")
            return
        calls: list[CallRecord] = []
        try:
            instance = await call(calls, "get", PURPOSE, self.client.get_instance(item.instance_id))
        except DingTalkError as exc:
            await self._read_failed(item, exc, calls)
            return
        imported = imported_from(item, instance)
        try:
            ref = await self.store.import_instance(item, imported, self.clock.now(), calls)
        except ImportRefused as refused:
            await self.store.park(item, imported, self.clock.now(), calls, refused)
            self.metrics.imported(item.kind, "parked")
            if self.observer is not None:
                self.observer.approval_parked(item.kind, "invalid", "invalid")
            logger.warning(
                "inbound instance parked: %s", refused.message,
                extra={"action": "inbound_parked", "kind": item.kind,
                       "instance_id": item.instance_id, "reason": refused.reason},
            )  # fmt: skip
            return
        if ref is None:
            self.metrics.imported(item.kind, "known")
            return
        self.metrics.imported(item.kind, "imported")
        logger.info(
            "inbound instance imported",
            extra={"action": "inbound_imported", "kind": item.kind,
                   "instance_id": item.instance_id, "source": item.source},
        )  # fmt: skip
        final = final_from_instance(instance)
        if final is not None:
            await self._finish(ref, final, tasks_from_instance(instance))

    async def _finish(self, ref: ApprovalRef, final: Final, tasks: list[TaskRecord]) -> None:
        await self.finish(ref, final, tasks=tasks, channel="poll")

    async def _read_failed(
        self, item: ImportItem, exc: DingTalkError, calls: list[CallRecord]
    ) -> None:
        now = self.clock.now()
        await self.control.add_usage(now, PURPOSE, sum(1 for c in calls if c.metered))
        if isinstance(exc, DingTalkQuotaExhausted):
            await self.pauses.quota_exhausted(now)
        elif isinstance(exc, DingTalkAuthError):
            await self.pauses.auth_failed(now, exc.message)
        if self.retry.exhausted(item.attempts):
            await self.store.drop(item)
            logger.error(
                "inbound instance given up: %s", exc.message,
                extra={"action": "inbound_given_up", "kind": item.kind,
                       "instance_id": item.instance_id},
            )  # fmt: skip
            return
        retry_at = now + timedelta(seconds=self.retry.delay(item.attempts))
        await self.store.release(item, self.owner, retry_at, f"reading it failed: {exc.message}")
        self.metrics.imported(item.kind, "deferred")


async def import_all(stage: Inbound, progress: Callable[[int], None] | None = None) -> int:
    """Import every due instance of the queue (``syncd backfill``); how many were taken."""
    taken = 0
    while handled := await stage.run_once():
        taken += handled
        if progress is not None:
            progress(taken)
    return taken

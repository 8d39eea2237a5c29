"""Reconcile creates whose outcome is unknown: adopt the instance DingTalk made, or retry.

DingTalk's create has no idempotency key, so after a timeout or a reset syncd lists the
template's instances started by the originator around the attempt, reads the ones no
approval owns yet, and matches them: by the kind's correlation field (which carries the
approval's key) when configured, else by every form value sent. A match is adopted;
no match means the create never happened, and the approval is submitted again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalRef, ApprovalState, CallRecord, Final, SubmitItem
from syncd.errors import DingTalkError
from syncd.logging import approval_fields
from syncd.pipeline.apply import Apply
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.retry import RetryPolicy
from syncd.pipeline.submit import correlation_key
from syncd.ports import ApprovalClient, Clock, SubmitStore
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)

WINDOW_BEFORE = timedelta(minutes=10)


def matches(item: SubmitItem, kind: KindSettings | None, instance: ProcessInstance) -> bool:
    """Whether ``instance`` is the one this approval's lost create made."""
    values = {v.name: v.value for v in instance.form_component_values if v.name}
    if kind is not None and kind.correlation_field:
        expected = correlation_key(item.kind, item.business_key, item.round)
        return values.get(kind.correlation_field) == expected
    sent: list[Mapping[str, Any]] = item.form_values or []
    originator = item.originator_user_id or item.originator
    if not sent or (originator and instance.originator_user_id not in (None, originator)):
        return False
    return all(values.get(str(v.get("name"))) == v.get("value") for v in sent)


class Reconcile:
    def __init__(
        self,
        store: SubmitStore,
        pauses: Pauses,
        client: ApprovalClient,
        apply: Apply,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        quiet_after: timedelta,
        batch_size: int = 10,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        self.lease = lease  # how long a replica that died keeps its claimed unknowns
        self.store = store
        self.pauses = pauses
        self.client = client
        self.apply = apply
        self.kinds = kinds
        self.clock = clock
        self.retry = retry
        self.owner = owner
        self.quiet_after = quiet_after
        self.batch_size = batch_size

    async def run_once(self) -> int:
        now = self.clock.now()
        if await self.pauses.active(now):
            return 0
        items = await self.store.claim_unknowns(self.batch_size, now, self.owner, now + self.lease)
        for item in items:
            await self.reconcile_one(item)
        return len(items)

    async def reconcile_one(self, item: SubmitItem) -> None:
        calls: list[CallRecord] = []
        try:
            found = await self._find(item, calls)
        except DingTalkError as exc:
            now = self.clock.now()
            await self.store.record_failed(
                item.id,
                to_state=ApprovalState.UNKNOWN,
                now=now,
                next_attempt_at=now + timedelta(seconds=self.retry.delay(item.attempts)),
                error_code=exc.code or type(exc).__name__,
                error_message=f"reconciling: {exc.message}",
                calls=calls,
                owner=self.owner,
            )
            return
        now = self.clock.now()
        if found is None:
            state = (
                ApprovalState.DEAD if self.retry.exhausted(item.attempts) else ApprovalState.PENDING
            )
            await self.store.record_failed(
                item.id,
                to_state=state,
                now=now,
                next_attempt_at=now,
                error_code="not_created",
                calls=calls,
                error_message="DingTalk has no instance from the lost create; submitting again",
                owner=self.owner,
            )
            logger.info(
                "no instance found; retrying create",
                extra={"action": "reconcile_retry", **approval_fields(item)},
            )
            return
        await self._adopt(item, found, calls)

    def _process_code(self, item: SubmitItem) -> str:
        kind = self.kinds.get(item.kind)
        return kind.process_code if kind else ""

    async def _find(self, item: SubmitItem, calls: list[CallRecord]) -> ProcessInstance | None:
        kind = self.kinds.get(item.kind)
        process_code = item.process_code or self._process_code(item)
        if not process_code:
            return None
        start = (item.submitted_at or item.captured_at) - WINDOW_BEFORE
        originator = item.originator_user_id or item.originator
        ids = await call(
            calls,
            "list",
            "reconcile",
            self.client.list_instance_ids(
                process_code, start, user_ids=[originator] if originator else ()
            ),
        )
        known = await self.store.known_instances(ids) if ids else set()
        for instance_id in ids:
            if instance_id in known:
                continue
            instance = await call(calls, "get", "reconcile", self.client.get_instance(instance_id))
            if matches(item, kind, instance):
                return instance.model_copy(update={"instance_id": instance_id})
        return None

    async def _adopt(
        self, item: SubmitItem, instance: ProcessInstance, calls: list[CallRecord]
    ) -> None:
        adopted = await record_adoption(
            self.store,
            item,
            instance,
            calls,
            process_code=item.process_code or self._process_code(item),
            now=self.clock.now(),
            quiet_after=self.quiet_after,
        )
        logger.info(
            "lost create found and adopted",
            extra={
                "action": "reconcile_adopted",
                **approval_fields(item),
                "instance_id": instance.instance_id,
            },
        )
        if adopted:
            await finish_adopted(self.apply, item, instance)


async def record_adoption(
    store: SubmitStore,
    item: SubmitItem,
    instance: ProcessInstance,
    calls: list[CallRecord],
    *,
    process_code: str,
    now: datetime,
    quiet_after: timedelta,
) -> bool:
    """Make ``instance`` the approval's own (its create's answer was lost), with ``calls``
    in its history; False if the approval moved on meanwhile (then nothing changed)."""
    return await store.record_created(
        item.id,
        instance_id=instance.instance_id,
        process_code=process_code,
        form_values=None,
        now=now,
        next_poll_at=now + quiet_after,
        created_at=instance.create_time,
        calls=calls,
    )


async def finish_adopted(apply: Apply, item: SubmitItem, instance: ProcessInstance) -> Final | None:
    """Apply the outcome of an adopted instance DingTalk has already decided; its final
    word, or None while it runs."""
    final = final_from_instance(instance)
    if final is None:
        return None
    ref = ApprovalRef(
        id=item.id,
        kind=item.kind,
        business_key=item.business_key,
        round=item.round,
        state=ApprovalState.RUNNING,
        instance_id=instance.instance_id,
        instance_created_at=instance.create_time,
    )
    await apply.finish(ref, final, tasks=tasks_from_instance(instance), channel="reconcile")
    return final

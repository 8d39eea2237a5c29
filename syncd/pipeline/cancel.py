"""Cancel: terminate the running instance of a business key when asked to.

An approval canceled before it was submitted is finished without calling DingTalk. A
running one is revoked as the system (DingTalk refuses revokes in the first 15 s, so
those wait). If the instance finished first, its real outcome is applied instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from syncd.domain import ApprovalState, CallRecord, CancelItem, Final
from syncd.errors import DingTalkError, DingTalkRejected
from syncd.pipeline.apply import Apply
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.retry import RetryPolicy
from syncd.ports import ApprovalClient, CancelStore, Clock
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)

REVOKE_GUARD = timedelta(seconds=15)
NOT_SUBMITTED = "NOT_SUBMITTED"


class Cancel:
    def __init__(
        self,
        store: CancelStore,
        pauses: Pauses,
        client: ApprovalClient,
        apply: Apply,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        retry: RetryPolicy,
        *,
        owner: str,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.lease = lease  # how long a replica that died keeps its claimed cancels
        self.store = store
        self.pauses = pauses
        self.client = client
        self.apply = apply
        self.kinds = kinds
        self.clock = clock
        self.retry = retry
        self.owner = owner
        self.batch_size = batch_size

    async def run_once(self) -> int:
        handled = 0
        for approval_id in await self.store.pending_cancels(self.batch_size):
            ref = await self.store.approval_by_id(approval_id)
            if ref is not None:
                final = Final(ApprovalState.CANCELED, NOT_SUBMITTED, None, self.clock.now())
                handled += await self.apply.finish(ref, final, channel="cancel")
        now = self.clock.now()
        if await self.pauses.active(now):
            return handled
        items = await self.store.claim_cancels(
            self.batch_size, now, now - REVOKE_GUARD, self.owner, now + self.lease
        )
        for item in items:
            await self.cancel_one(item)
        return handled + len(items)

    async def cancel_one(self, item: CancelItem) -> None:
        kind = self.kinds.get(item.kind)
        remark = kind.cancel_remark if kind else "Canceled by the requesting system"
        calls: list[CallRecord] = []
        ref = await self.store.approval_by_id(item.id)
        assert ref is not None
        try:
            await call(
                calls,
                "terminate",
                "cancel",
                self.client.terminate_instance(item.instance_id, remark=remark),
            )
        except DingTalkRejected as exc:
            await self._finished_first(item, exc, calls)
            return
        except DingTalkError as exc:
            now = self.clock.now()
            await self.store.release_cancel(
                item.id,
                now,
                now + timedelta(seconds=self.retry.delay(1)),
                exc.code or type(exc).__name__,
                exc.message,
                calls,
            )
            return
        final = Final(ApprovalState.CANCELED, "TERMINATED", None, self.clock.now())
        await self.apply.finish(ref, final, calls=calls, channel="cancel")

    async def _finished_first(
        self, item: CancelItem, exc: DingTalkError, calls: list[CallRecord]
    ) -> None:
        """DingTalk refused the revoke, most often because the instance already ended."""
        now = self.clock.now()
        try:
            instance = await call(
                calls, "get", "cancel", self.client.get_instance(item.instance_id)
            )
        except DingTalkError as read_error:
            await self.store.release_cancel(
                item.id,
                now,
                now + timedelta(minutes=1),
                read_error.code or "get_failed",
                read_error.message,
                calls,
            )
            return
        final = final_from_instance(instance)
        ref = await self.store.approval_by_id(item.id)
        if final is None or ref is None:
            await self.store.release_cancel(
                item.id,
                now,
                now + timedelta(minutes=5),
                exc.code or "terminate_refused",
                exc.message,
                calls,
            )
            return
        await self.apply.finish(
            ref, final, calls=calls, tasks=tasks_from_instance(instance), channel="cancel"
        )

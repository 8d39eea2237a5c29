"""Write-back outside the finish transaction: outcomes refused before, written again, and
unfinished rounds' progress.

A kind whose ``[kinds.X.write_back]`` has ``progress`` shows its rounds before DingTalk
decides: ``submitted`` (the instance exists; no task known yet), ``running`` (where it
waits and for whom), ``invalid`` and ``dead`` (why it was not submitted). Every change
bumps the round's version in syncd's tables; this stage writes the latest state of each
changed round once, however many changes came since its last write (see
:class:`~syncd.ports.target.BusinessTarget` for what is guaranteed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from syncd.domain import ApprovalState, Outcome
from syncd.domain_comments import last_comment
from syncd.logging import approval_fields
from syncd.ports import Clock, NullObserver, Observer, ProgressRow, ProgressWrite, WriteBackStore

logger = logging.getLogger(__name__)

#: A refused progress write is tried again after this long, doubled each time up to
#: :data:`PROGRESS_RETRY_CAP`.
PROGRESS_RETRY = timedelta(seconds=30)
PROGRESS_RETRY_CAP = timedelta(minutes=5)


def progress_status(row: ProgressRow) -> str | None:
    """What the round shows: ``submitted`` or ``running`` while DingTalk has it (running
    once any of its tasks is known), ``invalid`` or ``dead`` while parked; else ``None``."""
    if row.state is ApprovalState.RUNNING:
        return "running" if row.has_tasks else "submitted"
    if row.state in (ApprovalState.INVALID, ApprovalState.DEAD):
        return row.state.value
    return None


def progress_outcome(row: ProgressRow, shown: frozenset[str]) -> Outcome | None:
    """The round's progress as its business row shows it, or ``None`` when the row does
    not show it: a state the kind does not write, or a later round took the row over.

    Every field is the round's own, ``NULL`` (``None``) what it has not yet: a final
    field, the instance of a round that has none, the reason of one that is not parked.
    """
    status = progress_status(row)
    if row.superseded or status is None or status not in shown:
        return None
    live = status in ("submitted", "running")
    return Outcome(
        approval_id=row.approval_id,
        kind=row.kind,
        business_key=row.business_key,
        round=row.round,
        status=status,
        dingtalk_status="RUNNING" if live else None,
        result=None,
        instance_id=row.instance_id,
        business_id=None,
        finished_at=None,
        remark=None,
        approver=None,
        final=False,
        seq=row.seq,
        url=row.url,
        pc_url=row.pc_url,
        mobile_url=row.mobile_url,
        current_node=",".join(row.current_nodes) or None if live else None,
        pending_approvers=row.pending_approvers if live else (),
        reason=None if live else row.error_message,
        state_changed_at=row.changed_at,
        comments=row.comments,
        last_comment=last_comment(row.comments),
    )


class WriteBackRetry:
    """Retries write-backs that failed (e.g. the business row was locked or missing), then
    writes the progress of changed rounds of the kinds that show it."""

    def __init__(
        self,
        store: WriteBackStore,
        clock: Clock,
        *,
        max_attempts: int = 10,
        batch_size: int = 50,
        lease: timedelta = timedelta(minutes=2),
        progress: Mapping[str, frozenset[str]] | None = None,
        observer: Observer | None = None,
    ) -> None:
        """``progress`` maps a kind to the unfinished states its business row shows."""
        self.store = store
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.lease = lease
        self.progress = {kind: states for kind, states in (progress or {}).items() if states}
        self.observer = observer or NullObserver()

    async def run_once(self) -> int:
        return await self.retry_unwritten() + await self.write_progress()

    async def retry_unwritten(self) -> int:
        now = self.clock.now()
        lease = now + self.lease
        refs = await self.store.claim_unwritten(self.batch_size, now, lease, self.max_attempts)
        for ref in refs:
            error = await self.store.write_back(
                ref.id, self.clock.now(), now + timedelta(minutes=5)
            )
            self.observer.writeback_retried(ref.kind, written=error is None)
            logger.log(
                logging.WARNING if error else logging.INFO,
                "write-back retried",
                extra={
                    "action": "writeback_failed" if error else "writeback_done",
                    **approval_fields(ref),
                    "error": error,
                },
            )
        return len(refs)

    async def write_progress(self) -> int:
        """Write the latest state of changed rounds; how many were written or refused."""
        if not self.progress:
            return 0
        now = self.clock.now()
        done = 0
        for approval_id in await self.store.due_progress(
            sorted(self.progress), self.batch_size, now
        ):
            result = await self.store.write_progress(
                approval_id,
                self.clock.now(),
                self._decide,
                retry_at=self._retry_at,
                max_attempts=self.max_attempts,
            )
            if result is not None and (result.outcome is not None or result.error is not None):
                done += 1
                self._report(result)
        return done

    def _decide(self, row: ProgressRow) -> Outcome | None:
        return progress_outcome(row, self.progress.get(row.kind, frozenset()))

    def _retry_at(self, failures: int) -> datetime:
        """When to try a round's progress again after its ``failures``-th refusal."""
        delay = min(PROGRESS_RETRY * (1 << min(max(failures - 1, 0), 8)), PROGRESS_RETRY_CAP)
        return self.clock.now() + delay

    def _report(self, result: ProgressWrite) -> None:
        row = result.row
        self.observer.progress_written(row.kind, written=result.error is None)
        extra = {
            "approval_id": row.approval_id,
            "kind": row.kind,
            "business_key": row.business_key,
            "state": result.outcome.status if result.outcome else row.state.value,
        }
        if result.error is None:
            logger.debug("progress written back", extra=extra | {"action": "progress_done"})
            return
        logger.warning(
            "progress write-back failed",
            extra=extra
            | {"action": "progress_failed", "error": result.error, "gave_up": result.gave_up},
        )

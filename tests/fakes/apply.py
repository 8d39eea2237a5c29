"""In-memory twins of apply's store, the write-back retry's store and the inbox, as
``PostgresApplyStore``, ``PostgresWriteBackStore`` and ``PostgresInbox`` keep them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from syncd.dingtalk.events import InboundEvent
from syncd.domain import (
    FINISHED,
    ApprovalRef,
    ApprovalState,
    CallRecord,
    Final,
    FinishResult,
    InboxItem,
    Outcome,
    TaskRecord,
)
from syncd.errors import WriteBackError
from syncd.ports import Clock, ProgressRow, ProgressWrite
from tests.fakes.memory import MemoryDb
from tests.fakes.tables import ApprovalRow, InboxRow, Tables
from tests.fakes.target import OutcomeWrites

#: The states each final state may be reached from (``PostgresApplyStore._FROM``).
FROM = {
    ApprovalState.APPROVED: {ApprovalState.RUNNING},
    ApprovalState.REJECTED: {ApprovalState.RUNNING},
    ApprovalState.CANCELED: {ApprovalState.RUNNING, ApprovalState.PENDING},
}


def _said(final: Final) -> str:
    return f"DingTalk {final.dingtalk_status} {final.dingtalk_result or ''}".strip()


class MemoryApplyStore(OutcomeWrites):
    """``ApplyStore`` over a :class:`MemoryDb` (see ``PostgresApplyStore``)."""

    async def claim_inbox(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[InboxItem]:
        with self.db.transaction("claim_inbox") as t:
            due = [
                e
                for e in t.inbox.values()
                if e.processed_at is None
                and (e.next_attempt_at is None or e.next_attempt_at <= now)
            ]
            due.sort(key=lambda e: (e.next_attempt_at is not None, e.next_attempt_at or now, e.id))
            claimed = sorted(due[:limit], key=lambda e: e.id)
            for e in claimed:
                e.next_attempt_at = lease_until
                e.attempts += 1
            return [
                InboxItem(
                    e.id,
                    e.channel,
                    e.event_type,
                    e.instance_id,
                    e.payload,
                    e.received_at,
                    e.attempts,
                )
                for e in claimed
            ]

    async def defer_inbox(self, inbox_id: int, next_attempt_at: datetime, error: str) -> None:
        with self.db.transaction("defer_inbox") as t:
            t.inbox[inbox_id].next_attempt_at = next_attempt_at
            t.inbox[inbox_id].last_error = error

    async def drop_inbox(self, inbox_ids: Sequence[int], now: datetime, note: str | None) -> None:
        with self.db.transaction("drop_inbox") as t:
            _processed(t, inbox_ids, now, note, set_note=True)

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        with self.db.transaction("approvals_by_instances") as t:
            wanted = set(instance_ids)
            return {
                a.instance_id: a.ref()
                for a in t.approvals.values()
                if a.instance_id is not None and a.instance_id in wanted
            }

    async def touch(
        self,
        approval: ApprovalRef,
        now: datetime,
        *,
        next_poll_at: datetime,
        tasks: Sequence[TaskRecord] = (),
        inbox_ids: Sequence[int] = (),
        calls: Sequence[CallRecord] = (),
        url: str | None = None,
        progress_due: datetime | None = None,
    ) -> None:
        # Live status (links, progress due) is not modelled in memory: its contract suite
        # runs on PostgreSQL (tests/integration/writeback/test_progress_contract.py).
        with self.db.transaction("touch") as t:
            self.db.upsert_tasks(approval.id, tasks)
            _touch(t, [approval.id], now, next_poll_at)
            t.approvals[approval.id].calls_spent += len(calls)  # add_calls: any state
            self.db.record_calls(approval.id, now, list(calls))
            _processed(t, inbox_ids, now, None, set_note=True)

    async def touch_many(
        self,
        touches: Sequence[tuple[ApprovalRef, Sequence[TaskRecord]]],
        now: datetime,
        *,
        next_poll_at: datetime,
        inbox_ids: Sequence[int] = (),
        urls: Mapping[int, str] | None = None,
        progress_due: datetime | None = None,
        finishing: Collection[int] = (),
    ) -> None:
        with self.db.transaction("touch_many") as t:
            by_approval: dict[int, list[TaskRecord]] = {}
            for approval, tasks in touches:
                by_approval.setdefault(approval.id, []).extend(tasks)
            for approval_id, tasks in by_approval.items():
                self.db.upsert_tasks(approval_id, tasks)
            _touch(t, sorted(set(by_approval) - set(finishing)), now, next_poll_at)
            _processed(t, inbox_ids, now, None, set_note=True)

    async def finish(
        self,
        approval: ApprovalRef,
        final: Final,
        now: datetime,
        *,
        tasks: Sequence[TaskRecord] = (),
        inbox_ids: Sequence[int] = (),
        calls: Sequence[CallRecord] = (),
        retry_at: datetime | None = None,
    ) -> FinishResult:
        try:
            with self.db.transaction("finish") as t:
                row = self._finish(t, approval, final, now, tasks, inbox_ids, calls)
                if row is None:
                    return FinishResult(moved=False, written=False)
                await self.write_outcomes(t, [row], now)
                return FinishResult(moved=True, written=True, calls_spent=row.calls_spent)
        except WriteBackError as exc:
            error = str(exc)
        with self.db.transaction("finish.refused") as t:
            row = self._finish(t, approval, final, now, tasks, inbox_ids, calls)
            if row is None:
                return FinishResult(moved=False, written=False, error=error)
            self.writeback_failed(t, approval.id, now, error, retry_at or now)
            return FinishResult(moved=True, written=False, error=error, calls_spent=row.calls_spent)

    async def finish_many(
        self,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        *,
        inbox_ids: Sequence[int] = (),
    ) -> dict[int, FinishResult] | None:
        try:
            with self.db.transaction("finish_many") as t:
                rows = self._finish_rows(t, finals, now, inbox_ids, 0)
                await self.write_outcomes(t, rows, now)
        except WriteBackError:
            return None
        return {
            row.id: FinishResult(moved=True, written=True, calls_spent=row.calls_spent)
            for row in rows
        }

    def _finish(
        self,
        t: Tables,
        approval: ApprovalRef,
        final: Final,
        now: datetime,
        tasks: Sequence[TaskRecord],
        inbox_ids: Sequence[int],
        calls: Sequence[CallRecord],
    ) -> ApprovalRow | None:
        """Tasks and calls first (recorded even when nothing moves), then the move."""
        self.db.upsert_tasks(approval.id, tasks)
        self.db.record_calls(approval.id, now, list(calls))
        rows = self._finish_rows(t, [(approval, final)], now, inbox_ids, len(calls))
        return rows[0] if rows else None

    def _finish_rows(
        self,
        t: Tables,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        inbox_ids: Sequence[int],
        calls: int,
    ) -> list[ApprovalRow]:
        """``finish_approvals``: the events processed whatever moves; each approval moved
        only from a state that may move to its final state; in id order."""
        _processed(t, inbox_ids, now, None, set_note=False)
        moved = []
        for approval, final in sorted(finals, key=lambda f: f[0].id):
            a = t.approvals[approval.id]
            if a.state not in FROM[final.state]:
                continue
            self.db.move(a, final.state, now, _said(final))
            a.dingtalk_status, a.dingtalk_result = final.dingtalk_status, final.dingtalk_result
            a.finished_at = final.finished_at or now
            a.business_id = final.business_id if final.business_id is not None else a.business_id
            if final.decider is not None:
                a.approver, a.remark = final.decider.approver, final.decider.remark
            else:
                a.approver = self.db.derived_approver(a.id)
                a.remark = self.db.derived_remark(a.id)
            a.calls_spent += calls
            a.lease_owner = a.lease_expires_at = a.next_poll_at = None
            a.next_attempt_at = now
            moved.append(a)
        return moved


def _touch(t: Tables, ids: Sequence[int], now: datetime, next_poll_at: datetime) -> None:
    """``touch_approvals``: running ones only; the next poll only ever later."""
    for approval_id in ids:
        a = t.approvals[approval_id]
        if a.state is ApprovalState.RUNNING:
            a.last_event_at = now
            a.next_poll_at = max(a.next_poll_at or next_poll_at, next_poll_at)
            a.updated_at = now


def _processed(
    t: Tables, inbox_ids: Sequence[int], now: datetime, note: str | None, *, set_note: bool
) -> None:
    for inbox_id in inbox_ids:
        event = t.inbox[inbox_id]
        if event.processed_at is None:
            event.processed_at = now
            if set_note:
                event.last_error = note


class MemoryWriteBackStore(OutcomeWrites):
    """``WriteBackStore`` over a :class:`MemoryDb` (see ``PostgresWriteBackStore``)."""

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[ApprovalRef]:
        with self.db.transaction("claim_unwritten") as t:
            due = [
                a
                for a in t.approvals.values()
                if a.state in FINISHED
                and a.written_back_at is None
                and a.next_attempt_at <= now
                and a.writeback_attempts < max_attempts
            ]
            due.sort(key=lambda a: (a.next_attempt_at, a.id))
            for a in due[:limit]:
                a.next_attempt_at = lease_until
            return [a.ref() for a in due[:limit]]

    async def due_progress(self, kinds: Sequence[str], limit: int, now: datetime) -> list[int]:
        """Live status is not modelled in memory: no round is ever due (the rigs here
        configure no kind with progress; PostgreSQL's store is tested by the contract
        suite)."""
        return []

    async def write_progress(
        self,
        approval_id: int,
        now: datetime,
        decide: Callable[[ProgressRow], Outcome | None],
        *,
        retry_at: Callable[[int], datetime],
        max_attempts: int,
    ) -> ProgressWrite | None:
        return None

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None:
        try:
            with self.db.transaction("write_back") as t:
                row = t.approvals[approval_id]
                await self.write_outcomes(t, [row], now, force=force, derive=True)
            return None
        except WriteBackError as exc:
            error = str(exc)
        with self.db.transaction("write_back.refused") as t:
            self.writeback_failed(t, approval_id, now, error, retry_at)
        return error


class MemoryInbox:
    """``InboxWriter`` over a :class:`MemoryDb`: each dedup key stored once."""

    def __init__(self, db: MemoryDb, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def put(self, event: InboundEvent) -> bool:
        return (await self.put_many([event]))[0]

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        with self.db.transaction("inbox.put") as t:
            keys = {e.dedup_key for e in t.inbox.values()}
            new = []
            for event in events:
                new.append(event.dedup_key not in keys)
                if new[-1]:
                    keys.add(event.dedup_key)
                    row = InboxRow(
                        id=self.db.next_id(),
                        dedup_key=event.dedup_key,
                        channel=event.channel,
                        event_type=event.event_type,
                        instance_id=event.instance_id,
                        payload=dict(event.payload),
                        received_at=self.clock.now(),
                    )
                    t.inbox[row.id] = row
            return new

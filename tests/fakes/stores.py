"""In-memory twins of the control, poll and cancel stores.

Each store of ``tests.fakes`` mirrors its ``Postgres<Port>`` statement by statement: the same
claim conditions and order, the same guards (a move only from the states the named
query names, only by the lease's owner where it checks one), the same history lines and
usage counters. Where a comment cites a query, it is the one in ``sql/queries.sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.domain import (
    ApprovalRef,
    ApprovalState,
    CallRecord,
    CancelItem,
    PollItem,
    TaskRecord,
    month_start,
)
from tests.fakes.memory import MemoryDb
from tests.fakes.tables import lease_free


class MemoryControlStore:
    """``ControlStore`` over a :class:`MemoryDb` (see ``PostgresControlStore``)."""

    def __init__(self, db: MemoryDb) -> None:
        self.db = db

    async def get(self, name: str, now: datetime) -> dict[str, Any] | None:
        with self.db.transaction("control.get") as t:
            row = t.control.get(name)
            if row is None or (row["until"] is not None and row["until"] <= now):
                return None
            return dict(row)

    async def set(self, name: str, reason: str, until: datetime | None, now: datetime) -> None:
        with self.db.transaction("control.set") as t:
            t.control[name] = {
                "name": name,
                "reason": reason,
                "until": until,
                "set_at": now,
                "set_by": self.db.actor,
            }

    async def clear(self, name: str) -> None:
        with self.db.transaction("control.clear") as t:
            t.control.pop(name, None)

    async def add_usage(self, now: datetime, purpose: str, calls: int = 1) -> None:
        with self.db.transaction("control.add_usage") as t:
            t.usage[(month_start(now).date(), purpose)] += calls

    async def usage(self, now: datetime) -> dict[str, int]:
        with self.db.transaction("control.usage") as t:
            month = month_start(now).date()
            return {purpose: n for (m, purpose), n in sorted(t.usage.items()) if m == month}


class MemoryPollStore:
    """``PollStore`` over a :class:`MemoryDb` (see ``PostgresPollStore``)."""

    def __init__(self, db: MemoryDb) -> None:
        self.db = db

    async def claim_polls(self, limit: int, now: datetime, lease_until: datetime) -> list[PollItem]:
        with self.db.transaction("claim_polls") as t:
            due = [
                a
                for a in t.approvals.values()
                if a.state is ApprovalState.RUNNING
                and a.next_poll_at is not None
                and a.next_poll_at <= now
            ]
            due.sort(key=lambda a: (a.next_poll_at or now, a.id))
            items = []
            for a in due[:limit]:
                a.next_poll_at = lease_until
                assert a.instance_id is not None
                items.append(
                    PollItem(
                        id=a.id,
                        kind=a.kind,
                        business_key=a.business_key,
                        round=a.round,
                        instance_id=a.instance_id,
                        instance_created_at=a.instance_created_at,
                        last_event_at=a.last_event_at,
                        captured_at=a.captured_at,
                    )
                )
            return items

    async def set_next_poll(
        self,
        approval: ApprovalRef,
        at: datetime,
        calls: Sequence[CallRecord],
        now: datetime,
        tasks: Sequence[TaskRecord] = (),
    ) -> None:
        with self.db.transaction("set_next_poll") as t:
            a = t.approvals[approval.id]
            if a.state is ApprovalState.RUNNING:
                a.next_poll_at = at
                a.calls_spent += len(calls)
                self.db.upsert_tasks(approval.id, tasks)
            self.db.record_calls(approval.id, now, list(calls))


class MemoryCancelStore:
    """``CancelStore`` over a :class:`MemoryDb` (see ``PostgresCancelStore``)."""

    def __init__(self, db: MemoryDb) -> None:
        self.db = db

    async def pending_cancels(self, limit: int) -> list[int]:
        with self.db.transaction("pending_cancels") as t:
            return sorted(
                a.id
                for a in t.approvals.values()
                if a.cancel_requested_at is not None and a.state is ApprovalState.PENDING
            )[:limit]

    async def approval_by_id(self, approval_id: int) -> ApprovalRef | None:
        with self.db.transaction("approval_by_id") as t:
            row = t.approvals.get(approval_id)
            return None if row is None else row.ref()

    async def claim_cancels(
        self, limit: int, now: datetime, created_before: datetime, owner: str, lease_until: datetime
    ) -> list[CancelItem]:
        with self.db.transaction("claim_cancels") as t:
            due = [
                a
                for a in t.approvals.values()
                if a.cancel_requested_at is not None
                and a.state is ApprovalState.RUNNING
                and a.instance_created_at is not None
                and a.instance_created_at <= created_before
                and a.next_attempt_at <= now
                and lease_free(a, now)
            ]
            due.sort(key=lambda a: (a.cancel_requested_at or now, a.id))
            items = []
            for a in due[:limit]:
                a.lease_owner, a.lease_expires_at, a.updated_at = owner, lease_until, now
                assert a.instance_id is not None
                items.append(CancelItem(a.id, a.kind, a.business_key, a.instance_id, a.originator))
            return items

    async def release_cancel(
        self,
        approval_id: int,
        now: datetime,
        retry_at: datetime,
        error_code: str,
        error_message: str,
        calls: Sequence[CallRecord] = (),
    ) -> None:
        with self.db.transaction("release_cancel") as t:
            a = t.approvals[approval_id]
            if a.state is ApprovalState.RUNNING:
                a.lease_owner = a.lease_expires_at = None
                a.next_attempt_at = retry_at
                a.last_error_code, a.last_error_message = error_code, error_message[:2000]
                a.calls_spent += len(calls)
                a.updated_at = now
            self.db.record_calls(approval_id, now, list(calls))

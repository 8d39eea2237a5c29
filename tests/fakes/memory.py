"""``MemoryDb``: syncd's tables in memory, shared by the in-memory stores.

The stores (in ``tests.fakes``: ``ingest``, ``submit``, ``apply``, ``stores``) are views
of one ``MemoryDb``, as the PostgreSQL stores are views of one database. Each store
method is one :meth:`MemoryDb.transaction`: it runs to the end or, when it raises,
leaves every table as it found it (a :class:`~tests.fakes.tables.Snapshot`), so a
``WriteBackError`` rolls back the business rows too. :meth:`MemoryDb.fail` makes a
chosen method raise ``StoreError`` (before anything changed, or after it committed: a
reply lost on the way back).

Every state change goes through :meth:`MemoryDb.move`, which refuses a move the state
machine (``syncd.domain.TRANSITIONS``) does not allow: the guards of the named queries
never allow one, so a fake that did would be a fake that lies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.db.task_records import merge_task_record
from syncd.domain import (
    ApprovalState,
    CallRecord,
    TaskRecord,
    can_move,
    month_start,
)
from syncd.errors import StoreError
from tests.fakes.tables import (
    EPOCH,
    ApprovalRow,
    Line,
    OutboxEntry,
    Snapshot,
    Tables,
    TaskRow,
)


@dataclass
class _Failure:
    method: str
    times: int
    after_commit: bool
    then: Callable[[], None] | None


class MemoryDb:
    """syncd's tables in memory, with transactions, guarded moves and injected failures."""

    def __init__(self, actor: str = "syncd") -> None:
        self.t = Tables()
        self.actor = actor
        self._failures: list[_Failure] = []
        #: Store methods called, in order (a transaction each).
        self.calls: list[str] = []

    # --- transactions and failures ----------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        after_commit: bool = False,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Make the next ``times`` calls of store method ``method`` raise ``StoreError``:
        before they change anything, or (``after_commit``) after they committed; ``then``
        runs as each fails."""
        self._failures.append(_Failure(method, times, after_commit, then))

    def heal(self) -> None:
        """Forget the failures not injected yet."""
        self._failures.clear()

    def _take_failure(self, method: str, after_commit: bool) -> bool:
        for failure in self._failures:
            if failure.method == method and failure.after_commit == after_commit:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                if failure.then is not None:
                    failure.then()
                return True
        return False

    @contextmanager
    def transaction(self, method: str) -> Iterator[Tables]:
        """One store method's transaction: all of it, or (when it raises) none of it."""
        self.calls.append(method)
        if self._take_failure(method, after_commit=False):
            raise StoreError(f"database error: injected failure in {method}")
        saved = Snapshot.take(self.t)
        try:
            yield self.t
        except BaseException:
            saved.restore(self.t)
            raise
        if self._take_failure(method, after_commit=True):
            raise StoreError(f"database error: injected failure after {method} committed")

    # --- rows ----------------------------------------------------------------------------

    def next_id(self) -> int:
        self.t.serial += 1
        return self.t.serial

    def approval(self, approval_id: int) -> ApprovalRow:
        return self.t.approvals[approval_id]

    def add_approval(self, **columns: Any) -> ApprovalRow:
        """Insert an approval row directly (a test arranging the tables)."""
        row = ApprovalRow(id=self.next_id(), **columns)
        self.t.approvals[row.id] = row
        return row

    def add_outbox(
        self,
        kind: str,
        business_key: str,
        payload: Any,
        *,
        action: str = "submit",
        originator: str | None = None,
        at: datetime = EPOCH,
    ) -> int:
        """The application writes an outbox row (``payload`` as ingest reads it)."""
        entry = OutboxEntry(self.next_id(), at, kind, business_key, action, payload, originator)
        self.t.outbox[entry.id] = entry
        return entry.id

    def by_instance(self, instance_id: str) -> ApprovalRow | None:
        for row in self.t.approvals.values():
            if row.instance_id == instance_id:
                return row
        return None

    def move(
        self, row: ApprovalRow, to: ApprovalState, now: datetime, message: str | None = None
    ) -> None:
        """Change ``row``'s state and log the transition (a self-move of ``unknown``, a
        reconcile that found nothing yet, is not a transition and is not logged)."""
        if row.state is to is ApprovalState.UNKNOWN:
            return
        if not can_move(row.state, to):
            raise AssertionError(f"approval {row.id}: {row.state} → {to} is not a transition")
        self.log(row.id, now, "transition", row.state.value, to.value, message)
        row.state = to
        row.updated_at = now

    def log(
        self,
        approval_id: int,
        at: datetime,
        event_type: str,
        from_state: str | None = None,
        to_state: str | None = None,
        message: str | None = None,
    ) -> None:
        self.t.history.append(Line(approval_id, at, event_type, from_state, to_state, message))

    def record_calls(self, approval_id: int, now: datetime, calls: list[CallRecord]) -> None:
        """The calls in the approval's history and in the monthly usage (as ``calls``)."""
        for call in calls:
            self.t.history.append(
                Line(
                    approval_id,
                    now,
                    "call",
                    message=call.message,
                    endpoint=call.endpoint,
                    code=call.code,
                )
            )
            if call.metered:
                self.t.usage[(month_start(now).date(), call.purpose)] += 1

    def transitions(self, approval_id: int) -> list[tuple[str | None, str | None]]:
        """The approval's transitions, in order, as (from, to)."""
        return [
            (line.from_state, line.to_state)
            for line in self.t.history
            if line.approval_id == approval_id and line.event_type == "transition"
        ]

    def notes(self, approval_id: int) -> list[str]:
        return [
            line.message or ""
            for line in self.t.history
            if line.approval_id == approval_id and line.event_type == "note"
        ]

    # --- tasks -------------------------------------------------------------------------

    def upsert_tasks(self, approval_id: int, tasks: Sequence[TaskRecord]) -> None:
        """As ``upsert_tasks`` (one statement, its records of one key merged first): a
        record leaves what it does not say as it was, times once known stay, and a task
        that ended does not start again."""
        for task in tasks:
            key = (approval_id, task.record_type, task.record_key)
            found = self.t.tasks.get(key)
            if found is None:
                self.t.tasks[key] = TaskRow(self.next_id(), approval_id, task)
            else:
                found.record = merge_task_record(found.record, task)

    def _latest_task(self, approval_id: int, keep: Any) -> TaskRecord | None:
        rows = [r for r in self.t.tasks.values() if r.approval_id == approval_id and keep(r)]
        rows.sort(
            key=lambda r: (r.record.finished_at is not None, r.record.finished_at or EPOCH, r.id)
        )
        return rows[-1].record if rows else None

    def derived_approver(self, approval_id: int) -> str | None:
        """``syncd.approval_approver``: who last agreed or refused one of its tasks."""
        found = self._latest_task(
            approval_id,
            lambda r: (
                r.record.record_type == "task"
                and (r.record.result or "").upper() in ("AGREE", "REFUSE")
            ),
        )
        return found.user_id if found else None

    def derived_remark(self, approval_id: int) -> str | None:
        """``syncd.approval_remark``: the latest non-empty remark of its tasks or records."""
        found = self._latest_task(approval_id, lambda r: bool(r.record.remark))
        return found.remark if found else None

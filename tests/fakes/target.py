"""``MemoryTarget``, a business table in the fake database, and the write-back step the
stores that make approvals final share (``OutcomeWrites``, as in ``syncd.db``).

The write-back keeps the guarantee the PostgreSQL stores keep: the business row and
syncd's state change in one transaction. :class:`MemoryTarget` writes into the
transaction's own tables (a ``BusinessTarget[Tables]``), so a refusal rolls both back;
its ``writes`` column counts the writes each business row received.

A transaction never yields to the event loop (``MemoryTarget.write`` awaits nothing),
so concurrent tasks see each transaction whole, as they would in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncd.domain import Outcome
from syncd.errors import WriteBackError
from syncd.ports import BusinessTarget
from tests.fakes.memory import MemoryDb
from tests.fakes.tables import ApprovalRow, Tables

Targets = Mapping[str, BusinessTarget[Tables]]


class MemoryTarget:
    """A business table in the fake database: one row per business key; ``refuse`` says
    why a write is refused (a failed statement), or None."""

    def __init__(
        self, name: str = "app.request", *, refuse: Callable[[Outcome], str | None] | None = None
    ) -> None:
        self._name = name
        self.refuse = refuse or (lambda outcome: None)

    @property
    def name(self) -> str:
        return self._name

    def add_row(self, db: MemoryDb, business_key: str) -> None:
        """The application inserts its business row."""
        db.t.business.setdefault(self._name, {})[business_key] = {"writes": 0}

    def row(self, db: MemoryDb, business_key: str) -> dict[str, Any]:
        return db.t.business[self._name][business_key]

    async def write(self, tx: Tables, outcome: Outcome, *, again: bool = False) -> None:
        row = tx.business.get(self._name, {}).get(outcome.business_key)
        if row is None:
            raise WriteBackError(f"{self._name}: no row has key {outcome.business_key!r}")
        if (reason := self.refuse(outcome)) is not None:
            raise WriteBackError(f"{self._name}: {reason}")
        row.update(
            status=outcome.status,
            result=outcome.result,
            round=outcome.round,
            instance_id=outcome.instance_id,
            approver=outcome.approver,
            remark=outcome.remark,
            finished_at=outcome.finished_at,
            writes=row["writes"] + 1,
        )

    async def write_progress(self, tx: Tables, progress: Outcome) -> None:
        raise AssertionError("live status is not modelled in memory (see due_progress)")


class OutcomeWrites:
    """Writing outcomes to their targets and recording refusals (``OutcomeWrites``)."""

    def __init__(self, db: MemoryDb, targets: Targets) -> None:
        self.db = db
        self.targets = targets

    def outcome(self, a: ApprovalRow, *, derive: bool) -> Outcome:
        """The outcome of a finished approval; ``derive``: as ``select_outcome`` reads it
        (who decided and the remark from the tasks when the approval kept none)."""
        approver, remark = a.approver, a.remark
        if derive:
            approver = approver if approver is not None else self.db.derived_approver(a.id)
            remark = remark if remark is not None else self.db.derived_remark(a.id)
        return Outcome(
            approval_id=a.id,
            kind=a.kind,
            business_key=a.business_key,
            round=a.round,
            status=a.state.value,
            dingtalk_status=a.dingtalk_status,
            result=a.dingtalk_result,
            instance_id=a.instance_id,
            business_id=a.business_id,
            finished_at=a.finished_at,
            remark=remark,
            approver=approver,
        )

    async def write_outcomes(
        self,
        tx: Tables,
        rows: Sequence[ApprovalRow],
        now: datetime,
        *,
        force: bool = False,
        derive: bool = False,
    ) -> None:
        written = []
        for a in rows:
            if a.written_back_at is not None and not force:
                continue
            target = self.targets.get(a.kind)
            if target is not None:
                await target.write(tx, self.outcome(a, derive=derive), again=force)
            message = f"written back to {target.name}" if target else "no write-back configured"
            written.append((a, message))
        for a, message in written:
            a.written_back_at = now
            a.writeback_attempts += 1
            a.last_error_code = a.last_error_message = None
            a.updated_at = now
            self.db.log(a.id, now, "note", message=message)
            tx.notified.append(a.id)

    def writeback_failed(
        self, tx: Tables, approval_id: int, now: datetime, error: str, retry_at: datetime
    ) -> None:
        a = tx.approvals[approval_id]
        if a.written_back_at is None:
            a.writeback_attempts += 1
            a.next_attempt_at = retry_at
            a.last_error_code, a.last_error_message = "writeback_failed", error[:2000]
            a.updated_at = now
        self.db.log(approval_id, now, "note", message=f"write-back failed: {error}")

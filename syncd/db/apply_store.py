"""``PostgresApplyStore``: events in, outcomes written back — apply's store.

``finish`` is the heart of exactly-once write-back: in one transaction it moves the
approval to its final state (only from a state that may move there, so duplicates and
late events change nothing), records tasks, writes the outcome to the kind's business
target (:class:`~syncd.db.writeback_store.OutcomeWrites`), marks the events processed and
notifies ``syncd_result``. If the target refuses, that transaction rolls back and a
second one records the final state with the write-back error, to be retried and shown in
``syncd.unwritten``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import Conn, approval_ref
from syncd.db.task_records import TaskRecords, iso
from syncd.db.writeback_store import OutcomeWrites
from syncd.domain import (
    ApprovalRef,
    ApprovalState,
    CallRecord,
    Final,
    FinishResult,
    InboxItem,
    TaskRecord,
)
from syncd.errors import WriteBackError

_FROM = {
    ApprovalState.APPROVED: ["running"],
    ApprovalState.REJECTED: ["running"],
    ApprovalState.CANCELED: ["running", "pending"],
}


class PostgresApplyStore(OutcomeWrites, TaskRecords):
    """Implements ``syncd.ports.ApplyStore``."""

    # --- inbox ----------------------------------------------------------------------

    async def claim_inbox(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[InboxItem]:
        params = {"limit": limit, "now": now, "lease_until": lease_until}
        rows = await self.fetch_all("claim_inbox_batch", params)
        fields = InboxItem.__dataclass_fields__
        return [InboxItem(**{k: r[k] for k in fields}) for r in sorted(rows, key=lambda r: r["id"])]

    async def defer_inbox(self, inbox_id: int, next_attempt_at: datetime, error: str) -> None:
        async with self.transaction() as conn:
            params = {"id": inbox_id, "next_attempt_at": next_attempt_at, "error": error}
            await conn.execute(QUERIES["defer_inbox_event"], params)

    async def drop_inbox(self, inbox_ids: Sequence[int], now: datetime, note: str | None) -> None:
        async with self.transaction() as conn:
            await self._processed(conn, inbox_ids, now, note)

    async def _processed(
        self, conn: Conn, inbox_ids: Sequence[int], now: datetime, note: str | None = None
    ) -> None:
        if inbox_ids:
            params = {"ids": list(inbox_ids), "now": now, "note": note}
            await conn.execute(QUERIES["mark_inbox_processed"], params)

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        """The approvals these instances belong to, by instance id (one query)."""
        params = {"instance_ids": sorted(set(instance_ids))}
        rows = await self.fetch_all("select_approvals_by_instances", params)
        return {row["instance_id"]: approval_ref(row) for row in rows}

    # --- progress without a decision -------------------------------------------------

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
        """An event or poll showed the instance alive: record tasks (and the instance's
        link), push polling back, and make the business row's progress due."""
        async with self.transaction() as conn:
            await self._tasks(conn, approval, tasks, now)
            await conn.execute(
                QUERIES["touch_approvals"],
                _touched([approval.id], {approval.id: url} if url else {}, now, next_poll_at)
                | {"progress_due": progress_due or now},
            )
            await conn.execute(QUERIES["add_calls"], {"id": approval.id, "calls": len(calls)})
            await self.calls(conn, approval.id, now, calls)
            await self._processed(conn, inbox_ids, now)

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
        """Several :meth:`touch` (without calls) in one transaction: three statements
        (two when every approval is ``finishing``: its row is left to the finish).

        Task rows are locked first (in key order), then the approvals (in id order), as
        ``touch`` and ``finish`` do, so replicas never wait on each other in a circle.
        """
        async with self.transaction() as conn, conn.pipeline():
            await self.upsert_tasks(
                conn, [(approval, task) for approval, tasks in touches for task in tasks], now
            )
            ids = sorted({approval.id for approval, _ in touches} - set(finishing))
            if ids:
                params = _touched(ids, urls or {}, now, next_poll_at)
                await conn.execute(
                    QUERIES["touch_approvals"], params | {"progress_due": progress_due or now}
                )
            await self._processed(conn, inbox_ids, now)

    async def _tasks(
        self, conn: Conn, approval: ApprovalRef, tasks: Sequence[TaskRecord], now: datetime
    ) -> None:
        await self.upsert_tasks(conn, [(approval, task) for task in tasks], now)

    # --- the final word ---------------------------------------------------------------

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
        """Make the approval final and write the outcome back, exactly once."""
        try:
            async with self.transaction() as conn:
                row = await self._finish(
                    conn, approval, final, now, tasks, inbox_ids, calls, written=True
                )
                if row is None:
                    return FinishResult(moved=False, written=False)
                await self.write_outcomes(conn, [row], now, marked=True)
            return FinishResult(moved=True, written=True, calls_spent=int(row["calls_spent"]))
        except WriteBackError as exc:
            error = str(exc)
        async with self.transaction() as conn:
            row = await self._finish(conn, approval, final, now, tasks, inbox_ids, calls)
            if row is not None:
                await self.writeback_failed(conn, approval.id, now, error, retry_at or now)
        if row is None:
            return FinishResult(moved=False, written=False, error=error)
        return FinishResult(
            moved=True, written=False, error=error, calls_spent=int(row["calls_spent"])
        )

    async def finish_many(
        self,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        *,
        inbox_ids: Sequence[int] = (),
    ) -> dict[int, FinishResult] | None:
        """Several :meth:`finish` (without tasks or calls, one final per approval) in one
        transaction: the transitions (marked written) in one statement, then each
        write-back, then the history notes in one statement. Returns what moved, by
        approval id; ``None`` when a write-back failed, in which case nothing was done and
        each should be finished on its own."""
        try:
            async with self.transaction() as conn:
                rows = await self._finish_rows(conn, finals, now, inbox_ids, written=True)
                await self.write_outcomes(conn, rows, now, marked=True)
        except WriteBackError:
            return None
        return {
            row["id"]: FinishResult(moved=True, written=True, calls_spent=int(row["calls_spent"]))
            for row in rows
        }

    async def _finish(
        self,
        conn: Conn,
        approval: ApprovalRef,
        final: Final,
        now: datetime,
        tasks: Sequence[TaskRecord],
        inbox_ids: Sequence[int],
        calls: Sequence[CallRecord],
        *,
        written: bool = False,
    ) -> dict[str, Any] | None:
        """The final transition (tasks and calls recorded first); returns the outcome row,
        or None when nothing moved."""
        await self._tasks(conn, approval, tasks, now)
        await self.calls(conn, approval.id, now, calls)
        finals = [(approval, final)]
        rows = await self._finish_rows(conn, finals, now, inbox_ids, len(calls), written=written)
        return rows[0] if rows else None

    async def _finish_rows(
        self,
        conn: Conn,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        inbox_ids: Sequence[int],
        calls: int = 0,
        *,
        written: bool = False,
    ) -> list[dict[str, Any]]:
        """Move approvals to their final states, mark the events processed, write the
        history; returns the outcome rows of those that moved, in id order. ``written``
        marks them written back too: the caller writes their outcomes in the same
        transaction (``write_outcomes(..., marked=True)``)."""
        rows = [
            {
                "id": approval.id,
                "from_states": _FROM[final.state],
                "to_state": final.state.value,
                "dingtalk_status": final.dingtalk_status,
                "dingtalk_result": final.dingtalk_result,
                "finished_at": iso(final.finished_at),
                "business_id": final.business_id,
                "decided": final.decider is not None,
                "approver": final.decider.approver if final.decider else None,
                "remark": final.decider.remark if final.decider else None,
                "calls": calls,
                "message": _said(final),
                "url": final.url,
            }
            for approval, final in finals
        ]
        params = {
            "finals": Jsonb(rows),
            "inbox_ids": list(inbox_ids),
            "now": now,
            "actor": self.actor,
            "written": written,
        }
        return await (await conn.execute(QUERIES["finish_approvals"], params)).fetchall()


def _touched(
    ids: list[int], urls: Mapping[int, str], now: datetime, next_poll_at: datetime
) -> dict[str, Any]:
    """touch_approvals' parameters: the approvals, each one's link (if told), the times."""
    return {
        "ids": ids,
        "urls": [urls.get(i) for i in ids],
        "now": now,
        "next_poll_at": next_poll_at,
    }


def _said(final: Final) -> str:
    """What DingTalk said, for the history."""
    return f"DingTalk {final.dingtalk_status} {final.dingtalk_result or ''}".strip()

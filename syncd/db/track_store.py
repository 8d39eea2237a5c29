"""``TrackStore``: events in, outcomes written back — the apply side of the pipeline.

``finish`` is the heart of exactly-once write-back: in one transaction it moves the
approval to its final state (only from a state that may move there, so duplicates and
late events change nothing), records tasks, writes the outcome into the business table,
marks the events processed and notifies ``syncd_result``. If the business write fails,
that transaction rolls back and a second one records the final state with the
write-back error, to be retried and shown in ``syncd.unwritten``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, ids
from syncd.db.writeback import Outcome, WriteBack, WriteBackError
from syncd.domain import (
    ApprovalRef,
    ApprovalState,
    CallRecord,
    CancelItem,
    Final,
    FinishResult,
    InboxItem,
    PollItem,
    TaskRecord,
)

logger = logging.getLogger(__name__)

_FROM = {
    ApprovalState.APPROVED: ["running"],
    ApprovalState.REJECTED: ["running"],
    ApprovalState.CANCELED: ["running", "pending"],
}


class TrackStore(BaseStore):
    def __init__(self, pool: Any, writebacks: Mapping[str, WriteBack], *, actor: str = "syncd"):
        super().__init__(pool, actor=actor)
        self.writebacks = writebacks

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

    async def approval_by_instance(self, instance_id: str) -> ApprovalRef | None:
        return await self._ref("select_approval_by_instance", {"instance_id": instance_id})

    async def approval_by_id(self, approval_id: int) -> ApprovalRef | None:
        return await self._ref("select_approval_ref", {"id": approval_id})

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        """The approvals these instances belong to, by instance id (one query)."""
        params = {"instance_ids": sorted(set(instance_ids))}
        rows = await self.fetch_all("select_approvals_by_instances", params)
        return {row["instance_id"]: _approval_ref(row) for row in rows}

    async def _ref(self, query: str, params: dict[str, Any]) -> ApprovalRef | None:
        row = await self.fetch_one(query, params)
        return None if row is None else _approval_ref(row)

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
    ) -> None:
        """An event or poll showed the instance alive: record tasks, push polling back."""
        async with self.transaction() as conn:
            await self._tasks(conn, approval, tasks, now)
            await conn.execute(
                QUERIES["touch_approvals"],
                {"ids": [approval.id], "now": now, "next_poll_at": next_poll_at},
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
    ) -> None:
        """Several :meth:`touch` (without calls) in one transaction: three statements.

        Task rows are locked first (in key order), then the approvals (in id order), as
        ``touch`` and ``finish`` do, so replicas never wait on each other in a circle.
        """
        async with self.transaction() as conn, conn.pipeline():
            await self._upsert_tasks(
                conn, [(approval, task) for approval, tasks in touches for task in tasks], now
            )
            params = {
                "ids": sorted({approval.id for approval, _ in touches}),
                "now": now,
                "next_poll_at": next_poll_at,
            }
            await conn.execute(QUERIES["touch_approvals"], params)
            await self._processed(conn, inbox_ids, now)

    async def _tasks(
        self, conn: Conn, approval: ApprovalRef, tasks: Sequence[TaskRecord], now: datetime
    ) -> None:
        await self._upsert_tasks(conn, [(approval, task) for task in tasks], now)

    async def _upsert_tasks(
        self, conn: Conn, records: Sequence[tuple[ApprovalRef, TaskRecord]], now: datetime
    ) -> None:
        """Upsert task records in one statement, later records of a key over earlier ones."""
        merged: dict[tuple[int, str, str], tuple[ApprovalRef, TaskRecord]] = {}
        for approval, task in records:
            key = (approval.id, task.record_type, task.record_key)
            earlier = merged.get(key)
            merged[key] = (approval, task if earlier is None else _over(earlier[1], task))
        if not merged:
            return
        tasks = [
            {
                "approval_id": approval.id,
                "instance_id": approval.instance_id,
                "record_type": t.record_type,
                "record_key": t.record_key,
                "activity_id": t.activity_id,
                "user_id": t.user_id,
                "status": t.status,
                "result": t.result,
                "operation": t.operation,
                "remark": t.remark,
                "started_at": _iso(t.started_at),
                "finished_at": _iso(t.finished_at),
            }
            for approval, t in merged.values()
        ]
        await conn.execute(QUERIES["upsert_tasks"], {"tasks": Jsonb(tasks), "now": now})

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
                row = await self._finish(conn, approval, final, now, tasks, inbox_ids, calls)
                if row is None:
                    return FinishResult(moved=False, written=False)
                await self._write(conn, [row], now)
            return FinishResult(moved=True, written=True, calls_spent=int(row["calls_spent"]))
        except WriteBackError as exc:
            error = str(exc)
        async with self.transaction() as conn:
            row = await self._finish(conn, approval, final, now, tasks, inbox_ids, calls)
            if row is not None:
                await self._writeback_failed(conn, approval.id, now, error, retry_at or now)
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
        transaction: the transitions in one statement, then each write-back, then the marks
        in one statement. Returns what moved, by approval id; ``None`` when a write-back
        failed, in which case nothing was done and each should be finished on its own."""
        try:
            async with self.transaction() as conn:
                rows = await self._finish_rows(conn, finals, now, inbox_ids)
                await self._write(conn, rows, now)
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
    ) -> dict[str, Any] | None:
        """The final transition (tasks and calls recorded first); returns the outcome row,
        or None when nothing moved."""
        await self._tasks(conn, approval, tasks, now)
        await self.calls(conn, approval.id, now, calls)
        rows = await self._finish_rows(conn, [(approval, final)], now, inbox_ids, len(calls))
        return rows[0] if rows else None

    async def _finish_rows(
        self,
        conn: Conn,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        inbox_ids: Sequence[int],
        calls: int = 0,
    ) -> list[dict[str, Any]]:
        """Move approvals to their final states, mark the events processed, write the
        history; returns the outcome rows of those that moved, in id order."""
        rows = [
            {
                "id": approval.id,
                "from_states": _FROM[final.state],
                "to_state": final.state.value,
                "dingtalk_status": final.dingtalk_status,
                "dingtalk_result": final.dingtalk_result,
                "finished_at": _iso(final.finished_at),
                "business_id": final.business_id,
                "decided": final.decider is not None,
                "approver": final.decider.approver if final.decider else None,
                "remark": final.decider.remark if final.decider else None,
                "calls": calls,
                "message": _said(final),
            }
            for approval, final in finals
        ]
        params = {
            "finals": Jsonb(rows),
            "inbox_ids": list(inbox_ids),
            "now": now,
            "actor": self.actor,
        }
        return await (await conn.execute(QUERIES["finish_approvals"], params)).fetchall()

    async def _write_back(
        self, conn: Conn, approval_id: int, now: datetime, force: bool = False
    ) -> None:
        """Write the outcome of a final approval, locked; once unless ``force``."""
        row = await (await conn.execute(QUERIES["select_outcome"], {"id": approval_id})).fetchone()
        assert row is not None
        if row["written_back_at"] is not None and not force:
            return  # someone else (a replica, a replay) wrote it meanwhile
        await self._write(conn, [row], now, force=True)

    async def _write(
        self, conn: Conn, rows: Sequence[dict[str, Any]], now: datetime, force: bool = False
    ) -> None:
        """Write outcome rows into the business tables (each once, unless ``force``) and
        mark the approvals written, in one statement."""
        written = []
        for row in rows:
            if row["written_back_at"] is not None and not force:
                continue
            writer = self.writebacks.get(row["kind"])
            if writer is not None:
                await writer.write(conn, _outcome(row))
            message = f"written back to {writer.target}" if writer else "no write-back configured"
            written.append({"id": row["id"], "message": message})
        if written:
            params = {"written": Jsonb(written), "now": now, "actor": self.actor}
            await conn.execute(QUERIES["mark_written_back"], params)

    async def _writeback_failed(
        self, conn: Conn, approval_id: int, now: datetime, error: str, retry_at: datetime
    ) -> None:
        params = {"id": approval_id, "now": now, "error": error[:2000], "next_attempt_at": retry_at}
        await conn.execute(QUERIES["record_writeback_failed"], params)
        await self.history(
            conn, approval_id, now, event_type="note", message=f"write-back failed: {error}"
        )

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[int]:
        params = {
            "limit": limit,
            "now": now,
            "lease_until": lease_until,
            "max_attempts": max_attempts,
        }
        return ids(await self.fetch_all("claim_unwritten_batch", params))

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None:
        """Retry one write-back (again, with ``force``); returns the error, or None."""
        try:
            async with self.transaction() as conn:
                await self._write_back(conn, approval_id, now, force)
            return None
        except WriteBackError as exc:
            error = str(exc)
        async with self.transaction() as conn:
            await self._writeback_failed(conn, approval_id, now, error, retry_at)
        return error

    # --- polling and canceling ---------------------------------------------------------

    async def claim_polls(self, limit: int, now: datetime, lease_until: datetime) -> list[PollItem]:
        params = {"limit": limit, "now": now, "lease_until": lease_until}
        rows = await self.fetch_all("claim_poll_batch", params)
        fields = PollItem.__dataclass_fields__
        return [PollItem(**{k: r[k] for k in fields}) for r in rows]

    async def set_next_poll(
        self, approval_id: int, at: datetime, calls: Sequence[CallRecord], now: datetime
    ) -> None:
        async with self.transaction() as conn:
            await conn.execute(
                QUERIES["set_next_poll"],
                {"id": approval_id, "next_poll_at": at, "calls": len(calls)},
            )
            await self.calls(conn, approval_id, now, calls)

    async def claim_cancels(
        self, limit: int, now: datetime, created_before: datetime, owner: str, lease_until: datetime
    ) -> list[CancelItem]:
        params = {
            "limit": limit,
            "now": now,
            "created_before": created_before,
            "owner": owner,
            "lease_until": lease_until,
        }
        rows = await self.fetch_all("claim_cancel_batch", params)
        fields = CancelItem.__dataclass_fields__
        return [CancelItem(**{k: r[k] for k in fields}) for r in rows]

    async def pending_cancels(self, limit: int) -> list[int]:
        return ids(await self.fetch_all("select_pending_cancels", {"limit": limit}))

    async def release_cancel(
        self,
        approval_id: int,
        now: datetime,
        retry_at: datetime,
        error_code: str,
        error_message: str,
        calls: Sequence[CallRecord] = (),
    ) -> None:
        params = {
            "id": approval_id,
            "now": now,
            "next_attempt_at": retry_at,
            "error_code": error_code,
            "error_message": error_message[:2000],
            "calls": len(calls),
        }
        async with self.transaction() as conn:
            await conn.execute(QUERIES["release_cancel"], params)
            await self.calls(conn, approval_id, now, calls)


def _said(final: Final) -> str:
    """What DingTalk said, for the history."""
    return f"DingTalk {final.dingtalk_status} {final.dingtalk_result or ''}".strip()


def _outcome(row: dict[str, Any]) -> Outcome:
    return Outcome(
        approval_id=row["id"],
        kind=row["kind"],
        business_key=row["business_key"],
        round=row["round"],
        status=row["state"],
        dingtalk_status=row["dingtalk_status"],
        result=row["dingtalk_result"],
        instance_id=row["instance_id"],
        business_id=row["business_id"],
        finished_at=row["finished_at"],
        remark=row["remark"],
        approver=row["approver"],
    )


def _approval_ref(row: dict[str, Any]) -> ApprovalRef:
    return ApprovalRef(
        id=row["id"],
        kind=row["kind"],
        business_key=row["business_key"],
        round=row["round"],
        state=ApprovalState(row["state"]),
        instance_id=row["instance_id"],
        instance_created_at=row["instance_created_at"],
    )


def _over(earlier: TaskRecord, later: TaskRecord) -> TaskRecord:
    """``later`` with what it leaves out taken from ``earlier`` (as the upsert does)."""
    changes = {
        name: getattr(earlier, name)
        for name in TaskRecord.__dataclass_fields__
        if getattr(later, name) is None
    }
    return replace(later, **changes)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()

"""Recording approver tasks and operation records (``syncd.task``): apply's and poll's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from psycopg.types.json import Jsonb

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn
from syncd.domain import ApprovalRef, TaskRecord


class TaskRecords(BaseStore):
    """Upserts task records, later records of a key over earlier ones."""

    async def upsert_tasks(
        self, conn: Conn, records: Sequence[tuple[ApprovalRef, TaskRecord]], now: datetime
    ) -> None:
        """Upsert task records in one statement, later records of a key over earlier ones."""
        merged: dict[tuple[int, str, str], tuple[ApprovalRef, TaskRecord]] = {}
        for approval, task in records:
            key = (approval.id, task.record_type, task.record_key)
            earlier = merged.get(key)
            merged[key] = (
                approval,
                task if earlier is None else merge_task_record(earlier[1], task),
            )
        if not merged:
            return
        tasks = [
            {
                "approval_id": approval.id,
                "instance_id": approval.instance_id,
                "record_type": t.record_type,
                "record_key": t.record_key,
                "activity_id": t.activity_id,
                "activity_name": t.activity_name,
                "user_id": t.user_id,
                "status": t.status,
                "result": t.result,
                "operation": t.operation,
                "remark": t.remark,
                "started_at": iso(t.started_at),
                "finished_at": iso(t.finished_at),
                "pc_url": t.pc_url,
                "mobile_url": t.mobile_url,
            }
            for approval, t in merged.values()
        ]
        await conn.execute(QUERIES["upsert_tasks"], {"tasks": Jsonb(tasks), "now": now})


def merge_task_record(earlier: TaskRecord, later: TaskRecord) -> TaskRecord:
    """``later`` over ``earlier`` as ``upsert_tasks`` puts a record over a stored one: what
    it leaves out kept, times once known kept, and a task that ended not started again."""
    merged = replace(
        later,
        **{
            name: getattr(earlier, name)
            for name in TaskRecord.__dataclass_fields__
            if getattr(later, name) is None
        },
    )
    if later.status == "RUNNING" and earlier.status not in (None, "RUNNING"):
        merged = replace(merged, status=earlier.status)
    return replace(
        merged,
        started_at=earlier.started_at or later.started_at,
        finished_at=earlier.finished_at or later.finished_at,
    )


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()

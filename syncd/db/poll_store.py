"""``PostgresPollStore``: running approvals whose instances were quiet for too long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.queries import QUERIES
from syncd.db.task_records import TaskRecords
from syncd.domain import ApprovalRef, CallRecord, PollItem, TaskRecord


class PostgresPollStore(TaskRecords):
    """Implements ``syncd.ports.PollStore``; pushing ``next_poll_at`` is the lease."""

    async def claim_polls(self, limit: int, now: datetime, lease_until: datetime) -> list[PollItem]:
        params = {"limit": limit, "now": now, "lease_until": lease_until}
        rows = await self.fetch_all("claim_poll_batch", params)
        fields = PollItem.__dataclass_fields__
        return [PollItem(**{k: r[k] for k in fields}) for r in rows]

    async def set_next_poll(
        self,
        approval: ApprovalRef,
        at: datetime,
        calls: Sequence[CallRecord],
        now: datetime,
        tasks: Sequence[TaskRecord] = (),
    ) -> None:
        async with self.transaction() as conn:
            await self.upsert_tasks(conn, [(approval, task) for task in tasks], now)
            await conn.execute(
                QUERIES["set_next_poll"],
                {"id": approval.id, "next_poll_at": at, "calls": len(calls)},
            )
            if tasks:
                await conn.execute(
                    QUERIES["record_polled_progress"], {"id": approval.id, "now": now}
                )
            await self.calls(conn, approval.id, now, calls)

"""``PostgresCancelStore``: cancels requested by the application, before or after submit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, approval_ref, ids
from syncd.domain import ApprovalRef, CallRecord, CancelItem


class PostgresCancelStore(BaseStore):
    """Implements ``syncd.ports.CancelStore``; a claim takes the approval's lease."""

    async def pending_cancels(self, limit: int) -> list[int]:
        return ids(await self.fetch_all("select_pending_cancels", {"limit": limit}))

    async def approval_by_id(self, approval_id: int) -> ApprovalRef | None:
        row = await self.fetch_one("select_approval_ref", {"id": approval_id})
        return None if row is None else approval_ref(row)

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

"""``PostgresPollStore``: running approvals whose instances were quiet for too long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore
from syncd.domain import CallRecord, PollItem


class PostgresPollStore(BaseStore):
    """Implements ``syncd.ports.PollStore``; pushing ``next_poll_at`` is the lease."""

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

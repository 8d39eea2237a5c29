"""syncd's side of ledger retention (implements ``syncd.ports.ledger.LedgerApprovals``):
which approvals still wait for their write-back."""

from __future__ import annotations

from collections.abc import Sequence

from syncd.db.store import BaseStore


class PostgresLedgerApprovals(BaseStore):
    async def unwritten(self, approval_ids: Sequence[int]) -> set[int]:
        rows = await self.fetch_all("select_unwritten_among", {"ids": list(approval_ids)})
        return {int(r["id"]) for r in rows}

"""A business database's write-back ledger, as retention reads and purges it
(implements ``syncd.ports.ledger.WriteBackLedger``). Its times are UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.db.mysql.engine import query, run_one


def _utc_naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


class MySQLLedger:
    """``syncd_writeback`` of one business database, through ``engine``."""

    def __init__(self, name: str, engine: AsyncEngine, timeout: float) -> None:
        self.name = name
        self.engine = engine
        self.timeout = timeout

    async def _run(self, statement: sa.Executable, params: dict[str, Any]) -> Any:
        what = f"business database {self.name}: syncd_writeback"
        return await run_one(self.engine, self.timeout, statement, params, what)

    async def older_than(self, before: datetime, after: int, limit: int) -> list[int]:
        params = {"before": _utc_naive(before), "after": after, "limit": limit}
        return [int(r.approval_id) for r in await self._run(query("select_old_ledger"), params)]

    async def delete(self, approval_ids: Sequence[int], before: datetime) -> int:
        if not approval_ids:
            return 0
        statement = query("delete_old_ledger").bindparams(sa.bindparam("ids", expanding=True))
        params = {"ids": list(approval_ids), "before": _utc_naive(before)}
        return int(await self._run(statement, params))

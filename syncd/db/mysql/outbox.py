"""A business database's ``syncd_outbox``, as the relay reads, marks and purges it
(implements ``syncd.ports.relay.OutboxSource``).

Its times are UTC in ``DATETIME(6)`` (docs/mysql.md); they come back as aware datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.db.mysql.engine import query, run_one
from syncd.ports.relay import Backlog, SourceRow


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return None if value is None else str(value)


def source_row(row: Any) -> SourceRow:
    created_at = _utc(row.created_at)
    assert created_at is not None
    return SourceRow(
        id=int(row.id),
        created_at=created_at,
        kind=_text(row.kind) or "",
        business_key=_text(row.business_key) or "",
        action=_text(row.action) or "",
        payload=_text(row.payload),
        originator=_text(row.originator),
        request_id=_text(row.request_id),
    )


class MySQLOutboxSource:
    """``syncd_outbox`` of one business database, through ``engine``."""

    def __init__(self, name: str, engine: AsyncEngine, timeout: float) -> None:
        self.name = name
        self.engine = engine
        self.timeout = timeout

    async def _run(self, statement: sa.Executable, params: dict[str, Any]) -> Any:
        what = f"business database {self.name}: syncd_outbox"
        return await run_one(self.engine, self.timeout, statement, params, what)

    async def unconsumed(self, limit: int) -> list[SourceRow]:
        rows = await self._run(query("select_unconsumed_outbox"), {"limit": limit})
        return [source_row(r) for r in rows]

    async def mark_consumed(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        statement = query("mark_outbox_consumed").bindparams(sa.bindparam("ids", expanding=True))
        return int(await self._run(statement, {"ids": list(ids)}))

    async def purge(self, before: datetime, limit: int) -> int:
        naive = before.astimezone(UTC).replace(tzinfo=None)
        params = {"before": naive, "limit": limit}
        return int(await self._run(query("purge_consumed_outbox"), params))

    async def backlog(self) -> Backlog:
        [row] = await self._run(query("select_outbox_backlog"), {})
        return Backlog(int(row.waiting), _utc(row.oldest_at))

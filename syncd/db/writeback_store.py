"""``PostgresWriteBackStore``: outcomes the business targets refused, written again; and
the write-back step every transaction that makes approvals final shares.

An outcome goes to its kind's :class:`~syncd.ports.BusinessTarget` on the connection of
syncd's transaction, and the approval is marked written in the same transaction: the
business row and syncd's state commit together, or neither does. A target that refuses
(``WriteBackError``) rolls the transaction back; the caller then records the refusal in a
transaction of its own, and the outcome waits in ``syncd.unwritten``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, approval_ref
from syncd.domain import ApprovalRef, Outcome
from syncd.errors import WriteBackError
from syncd.ports import BusinessTarget

#: Each kind's business target, on syncd's connection (a kind without one is marked
#: written with a note, as there is nothing to write).
Targets = Mapping[str, BusinessTarget[Conn]]


class OutcomeWrites(BaseStore):
    """Writing outcome rows to their targets and recording refusals, on a connection."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], targets: Targets, *, actor: str = "syncd"
    ) -> None:
        super().__init__(pool, actor=actor)
        self.targets = targets

    async def write_outcomes(
        self, conn: Conn, rows: Sequence[dict[str, Any]], now: datetime, force: bool = False
    ) -> None:
        """Write outcome rows to their targets (each once, unless ``force``) and mark the
        approvals written, in one statement. Raises ``WriteBackError`` when a target
        refuses: the caller's transaction must then roll back."""
        written = []
        for row in rows:
            if row["written_back_at"] is not None and not force:
                continue
            target = self.targets.get(row["kind"])
            if target is not None:
                await target.write(conn, _outcome(row), again=force)
            message = f"written back to {target.name}" if target else "no write-back configured"
            written.append({"id": row["id"], "message": message})
        if written:
            params = {"written": Jsonb(written), "now": now, "actor": self.actor}
            await conn.execute(QUERIES["mark_written_back"], params)

    async def writeback_failed(
        self, conn: Conn, approval_id: int, now: datetime, error: str, retry_at: datetime
    ) -> None:
        """Record a refusal: the error, one more attempt, the next at ``retry_at``."""
        params = {"id": approval_id, "now": now, "error": error[:2000], "next_attempt_at": retry_at}
        await conn.execute(QUERIES["record_writeback_failed"], params)
        await self.history(
            conn, approval_id, now, event_type="note", message=f"write-back failed: {error}"
        )


class PostgresWriteBackStore(OutcomeWrites):
    """Implements ``syncd.ports.WriteBackStore``: the write-back retry and ``syncd replay``."""

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[ApprovalRef]:
        params = {
            "limit": limit,
            "now": now,
            "lease_until": lease_until,
            "max_attempts": max_attempts,
        }
        return [approval_ref(r) for r in await self.fetch_all("claim_unwritten_batch", params)]

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None:
        """Retry one write-back (again, with ``force``); returns the error, or None."""
        try:
            async with self.transaction() as conn:
                query = QUERIES["select_outcome"]
                row = await (await conn.execute(query, {"id": approval_id})).fetchone()
                assert row is not None
                # Written meanwhile (a replica, a replay) unless forced: nothing to do.
                await self.write_outcomes(conn, [row], now, force=force)
            return None
        except WriteBackError as exc:
            error = str(exc)
        async with self.transaction() as conn:
            await self.writeback_failed(conn, approval_id, now, error, retry_at)
        return error


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

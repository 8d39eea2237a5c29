"""``AdminStore``: what the operator commands read and change (``syncd status``, ``show``,
``retry``, ``dismiss``, ``cancel``, ``replay``, ``reconcile``); the
:class:`~syncd.ports.operator.OperatorStore` of :class:`~syncd.pipeline.repair.Repair`.

Like the pipeline's stores: one method, one transaction; every change is a guarded
transition (the UPDATE names the states it may move from, so a row the daemon moved
meanwhile is refused, not overwritten) recorded in ``syncd.approval_event`` with the
operator as actor (``cli:<user>``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db import migrations
from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, approval_ref, submit_item
from syncd.domain import ApprovalRef, ApprovalState, SubmitItem
from syncd.errors import ConfigError, StoreError
from syncd.ports.operator import ApprovalBrief, CancelRequest, Moved

Row = dict[str, Any]


@asynccontextmanager
async def open_pool(
    dsn: str, *, application_name: str = "syncd cli", wait: float = 10.0
) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A small pool for one command, after checking that the schema is current."""
    state = await migrations.status(dsn)
    if not state.current:
        pending = ", ".join(m.label for m in state.pending)
        raise ConfigError(f"the database schema is behind ({pending}): run `syncd migrate`")
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=2,
        kwargs={
            "autocommit": True,  # see BaseStore.connection
            "row_factory": dict_row,
            "application_name": application_name,
        },
        open=False,
        timeout=wait,
    )
    try:
        await pool.open(wait=True, timeout=wait)
    except Exception as exc:
        await pool.close()
        raise StoreError(f"cannot open a connection: {redact(str(exc)).strip()}") from exc
    try:
        yield pool
    finally:
        await pool.close()


def _brief(row: Row) -> ApprovalBrief:
    return ApprovalBrief(
        id=int(row["id"]),
        kind=row["kind"],
        business_key=row["business_key"],
        round=int(row["round"]),
        state=ApprovalState(row["state"]),
        instance_id=row.get("instance_id"),
        written_back_at=row.get("written_back_at"),
        last_error_code=row.get("last_error_code"),
        last_error_message=row.get("last_error_message"),
        superseded=bool(row.get("superseded")),
    )


class AdminStore(BaseStore):
    # --- reading -----------------------------------------------------------------------

    async def status(self, kind: str | None, stuck_before: datetime) -> list[Row]:
        """Per kind and state: counts, oldest capture, unwritten and stuck counts."""
        params = {"kind": kind, "stuck_before": stuck_before}
        async with self.transaction() as conn:
            return await (await conn.execute(QUERIES["select_status"], params)).fetchall()

    async def outbox_backlog(self, kind: str | None) -> list[Row]:
        async with self.transaction() as conn:
            cursor = await conn.execute(QUERIES["select_outbox_backlog"], {"kind": kind})
            return await cursor.fetchall()

    async def quarantine(self, kind: str | None) -> list[Row]:
        """Quarantined outbox rows per kind: how many, and since when."""
        return await self.fetch_all("select_quarantine_by_kind", {"kind": kind})

    async def rounds(self, kind: str, business_key: str, round_: int | None = None) -> list[Row]:
        """Every round of a business key (or one), each with its history and tasks."""
        params = {"kind": kind, "business_key": business_key, "round": round_}
        async with self.transaction() as conn:
            rounds = await (await conn.execute(QUERIES["select_rounds"], params)).fetchall()
            ids = {"ids": [r["id"] for r in rounds]}
            history = await (await conn.execute(QUERIES["select_approval_history"], ids)).fetchall()
            tasks = await (await conn.execute(QUERIES["select_approval_tasks"], ids)).fetchall()
        for row in rounds:
            row["history"] = [h for h in history if h["approval_id"] == row["id"]]
            row["tasks"] = [t for t in tasks if t["approval_id"] == row["id"]]
        return rounds

    async def unwritten_ids(self, kind: str) -> list[int]:
        rows = await self.fetch_all("select_unwritten_ids", {"kind": kind})
        return [int(r["id"]) for r in rows]

    # --- naming approvals (OperatorStore) ----------------------------------------------

    async def round_id(self, kind: str, business_key: str, round_: int | None) -> int | None:
        params = {"kind": kind, "business_key": business_key, "round": round_}
        rows = await self.fetch_all("select_key_round", params)
        return int(rows[0]["id"]) if rows else None

    async def active_round_id(self, kind: str, business_key: str) -> int | None:
        rows = await self.fetch_all(
            "select_active_round", {"kind": kind, "business_key": business_key}
        )
        return int(rows[0]["id"]) if rows else None

    async def briefs(self, approval_ids: Sequence[int]) -> dict[int, ApprovalBrief]:
        rows = await self.fetch_all("select_approvals_brief", {"ids": list(approval_ids)})
        return {int(r["id"]): _brief(r) for r in rows}

    async def parked_ids(
        self, kind: str, states: Sequence[ApprovalState], *, superseded: bool = False
    ) -> list[int]:
        params = {"kind": kind, "states": [s.value for s in states], "superseded": superseded}
        return [int(r["id"]) for r in await self.fetch_all("select_parked_ids", params)]

    # --- retry and dismiss -------------------------------------------------------------

    async def retry(self, now: datetime, approval_ids: Sequence[int]) -> Moved:
        return await self._move(now, approval_ids, "retry_parked", ApprovalState.PENDING, None)

    async def dismiss(self, now: datetime, approval_ids: Sequence[int], reason: str) -> Moved:
        return await self._move(
            now, approval_ids, "dismiss_parked", ApprovalState.DISMISSED, reason
        )

    async def _move(
        self,
        now: datetime,
        approval_ids: Sequence[int],
        query: str,
        to: ApprovalState,
        reason: str | None,
    ) -> Moved:
        """One guarded move per approval, each with its history line, in one transaction."""
        moved: list[ApprovalBrief] = []
        refused: list[int] = []
        async with self.transaction() as conn:
            for approval_id in approval_ids:
                params = {"id": approval_id, "now": now}
                row = await (await conn.execute(QUERIES[query], params)).fetchone()
                if row is None:
                    refused.append(approval_id)
                    continue
                was = f"was {row['last_error_code']}: {row['last_error_message']}"
                if to is ApprovalState.DISMISSED:
                    message = f"dismissed by an operator: {reason} ({was})"
                else:
                    message = f"retried by an operator ({was})"
                await self.history(
                    conn,
                    approval_id,
                    now,
                    from_state=row["from_state"],
                    to_state=to.value,
                    message=message[:2000],
                )
                moved.append(_brief({**row, "state": row["from_state"]}))
        return Moved(moved, refused)

    async def requeue(self, outbox_ids: Sequence[int], *, kind: str | None = None) -> list[Row]:
        """Send quarantined outbox rows (these, or all, or all of ``kind``) back to ingest:
        their quarantine lines are removed and the rows are unconsumed, in one statement."""
        params = {"ids": list(outbox_ids), "kind": kind}
        rows = await self.fetch_all("requeue_quarantined", params)
        return sorted(rows, key=lambda r: r["outbox_id"])

    # --- cancel ------------------------------------------------------------------------

    async def request_cancel(self, approval_id: int, now: datetime) -> CancelRequest | None:
        params = {"id": approval_id, "now": now}
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["request_cancel"], params)).fetchone()
            if row is None:
                return None
            if row["requested_before"] is None:
                await self.history(
                    conn,
                    approval_id,
                    now,
                    event_type="note",
                    message="cancel requested by an operator",
                )
        return CancelRequest(_brief(row), row["requested_before"])

    # --- replay ------------------------------------------------------------------------

    async def hold_writeback(
        self, approval_id: int, now: datetime, hold_until: datetime, *, force: bool
    ) -> bool:
        params = {"id": approval_id, "now": now, "hold_until": hold_until, "force": force}
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["hold_writeback"], params)).fetchone()
            if row is None:
                return False
            again = row["written_back_at"] is not None
            message = "write-back replayed by an operator" + (
                f" (already written at {row['written_back_at'].isoformat()}; writing again)"
                if again
                else ""
            )
            await self.history(conn, approval_id, now, event_type="note", message=message)
        return True

    # --- reconcile ---------------------------------------------------------------------

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        params = {"ids": list(instance_ids)}
        async with self.transaction() as conn:
            cursor = await conn.execute(QUERIES["select_instance_owners"], params)
            rows = await cursor.fetchall()
        return {r["instance_id"]: approval_ref(r) for r in rows}

    async def running_since(
        self, kind: str, process_code: str, since: datetime
    ) -> list[ApprovalRef]:
        params = {"kind": kind, "process_code": process_code, "since": since}
        async with self.transaction() as conn:
            rows = await (await conn.execute(QUERIES["select_running_since"], params)).fetchall()
        return [approval_ref(r) for r in rows]

    async def unknown_rounds(self, kind: str) -> list[SubmitItem]:
        async with self.transaction() as conn:
            cursor = await conn.execute(QUERIES["select_unknown_rounds"], {"kind": kind})
            rows = await cursor.fetchall()
        return [submit_item(r) for r in rows]

    async def round_of(self, kind: str, business_key: str, round_: int) -> ApprovalRef | None:
        params = {"kind": kind, "business_key": business_key, "round": round_}
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["select_rounds"], params)).fetchone()
        return None if row is None else approval_ref(row)

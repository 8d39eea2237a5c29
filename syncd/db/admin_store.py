"""``AdminStore``: what the operator commands read and change (``syncd status``, ``show``,
``retry``, ``cancel``, ``replay``, ``reconcile``).

Like the pipeline's stores: one method, one transaction; every change is a guarded
transition (the UPDATE names the states it may move from, so a row the daemon moved
meanwhile is refused, not overwritten) recorded in ``syncd.approval_event`` with the
operator as actor (``cli:<user>``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db import migrations
from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, approval_ref, submit_item
from syncd.domain import BUSINESS_KEY_MAX, ApprovalRef, ApprovalState, SubmitItem
from syncd.errors import ConfigError, StoreError

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


@dataclass
class RetryResult:
    """Which approvals went back to pending, and why the others were refused."""

    retried: list[Row] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def refusal(row: Row | None, approval_id: int, allowed: str) -> str:
    """Why an approval cannot take an operator's action, with the way forward."""
    if row is None:
        return f"approval {approval_id} does not exist"
    name = f"approval {approval_id} ({row['kind']} {row['business_key']} round {row['round']})"
    if row["state"] == "invalid" and row["last_error_code"] == "key_too_long":
        return (
            f"{name}: its business_key was too long to store (it holds a shortened one), so "
            "it can never be submitted; the application must write the request again with a "
            f"key of at most {BUSINESS_KEY_MAX} characters"
        )
    if row["superseded"] and row["state"] in ("invalid", "dead"):
        return (
            f"{name} was replaced by a newer round of the same key; "
            f"`syncd show {row['kind']} {row['business_key']}` shows the rounds"
        )
    return f"{name} is {row['state']}, not {allowed}"


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
        async with self.transaction() as conn:
            rows = await (
                await conn.execute(QUERIES["select_unwritten_ids"], {"kind": kind})
            ).fetchall()
        return [int(r["id"]) for r in rows]

    async def briefs(self, approval_ids: Sequence[int]) -> dict[int, Row]:
        async with self.transaction() as conn:
            return await self._briefs(conn, approval_ids)

    async def _briefs(self, conn: Conn, approval_ids: Sequence[int]) -> dict[int, Row]:
        cursor = await conn.execute(QUERIES["select_approvals_brief"], {"ids": list(approval_ids)})
        return {int(r["id"]): r for r in await cursor.fetchall()}

    # --- retry -------------------------------------------------------------------------

    async def retry(
        self,
        now: datetime,
        approval_ids: Sequence[int] = (),
        *,
        kind: str | None = None,
        states: Sequence[ApprovalState] = (),
    ) -> RetryResult:
        """Move parked approvals (by id, or every one of ``kind`` in ``states``) to pending."""
        result = RetryResult()
        async with self.transaction() as conn:
            ids = list(approval_ids)
            if kind is not None:
                params = {"kind": kind, "states": [s.value for s in states]}
                rows = await (await conn.execute(QUERIES["select_parked_ids"], params)).fetchall()
                ids += [int(r["id"]) for r in rows]
            for approval_id in ids:
                row = await (
                    await conn.execute(QUERIES["retry_parked"], {"id": approval_id, "now": now})
                ).fetchone()
                if row is None:
                    briefs = await self._briefs(conn, [approval_id])
                    reason = refusal(briefs.get(approval_id), approval_id, "invalid or dead")
                    result.refused.append((approval_id, reason))
                    continue
                was = f"{row['last_error_code']}: {row['last_error_message']}"
                await self.history(
                    conn,
                    approval_id,
                    now,
                    from_state=row["from_state"],
                    to_state="pending",
                    message=f"retried by an operator (was {was})"[:2000],
                )
                result.retried.append(row)
        return result

    async def requeue(self, outbox_ids: Sequence[int], *, kind: str | None = None) -> list[Row]:
        """Send quarantined outbox rows (these, or all, or all of ``kind``) back to ingest:
        their quarantine lines are removed and the rows are unconsumed, in one statement."""
        params = {"ids": list(outbox_ids), "kind": kind}
        rows = await self.fetch_all("requeue_quarantined", params)
        return sorted(rows, key=lambda r: r["outbox_id"])

    # --- cancel ------------------------------------------------------------------------

    async def request_cancel(self, kind: str, business_key: str, now: datetime) -> Row | None:
        """Ask for the active round of a key to be canceled; None when no round is active."""
        params = {"kind": kind, "business_key": business_key, "now": now}
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["request_cancel_active"], params)).fetchone()
            if row is None:
                return None
            if row["requested_before"] is None:
                await self.history(
                    conn,
                    row["id"],
                    now,
                    event_type="note",
                    message="cancel requested by an operator",
                )
        return row

    # --- replay ------------------------------------------------------------------------

    async def hold_writeback(
        self, approval_id: int, now: datetime, hold_until: datetime, *, force: bool
    ) -> Row | None:
        """Keep the daemon's write-back retry off a finished approval while it is replayed.

        Returns None (and changes nothing) unless the approval is finished and, without
        ``force``, not yet written back.
        """
        params = {"id": approval_id, "now": now, "hold_until": hold_until, "force": force}
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["hold_writeback"], params)).fetchone()
            if row is None:
                return None
            again = row["written_back_at"] is not None
            message = "write-back replayed by an operator" + (
                f" (already written at {row['written_back_at'].isoformat()}; writing again)"
                if again
                else ""
            )
            await self.history(conn, approval_id, now, event_type="note", message=message)
        return row

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

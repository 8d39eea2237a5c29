"""``PostgresStore``: the pipeline's view of PostgreSQL, in domain verbs.

One method, one transaction, opened and committed here; pipeline code never sees a
connection. State changes are guarded transitions: each UPDATE names the states it may
move from and returns the old state, so a lost lease or a duplicate event changes
nothing. Every transition and every DingTalk call is appended to
``syncd.approval_event`` in the same transaction. All times come from the caller's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.domain import (
    ApprovalState,
    CallRecord,
    CancelRound,
    IngestDecision,
    LatestRound,
    NewRound,
    NoteOnRound,
    OutboxRow,
    SubmitItem,
    month_start,
)
from syncd.errors import StoreError

Conn = psycopg.AsyncConnection[dict[str, Any]]
Decide = Callable[[OutboxRow, LatestRound | None], Sequence[IngestDecision]]


class BaseStore:
    """Pool access, error mapping and the history helpers every store shares."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, actor: str = "syncd") -> None:
        self._pool = pool
        self.actor = actor

    @asynccontextmanager
    async def transaction(self, *, pipelined: bool = False) -> AsyncIterator[Conn]:
        """A connection inside one transaction; psycopg errors become ``StoreError``.

        ``pipelined`` sends statements without waiting for each result (a fetch waits),
        COMMIT included: a transaction that only writes after its first read costs two
        round trips, whatever its length.
        """
        try:
            async with self._pool.connection() as conn:
                if pipelined:
                    async with conn.pipeline(), conn.transaction():
                        yield conn
                else:
                    async with conn.transaction():
                        yield conn
        except psycopg.Error as exc:
            raise StoreError(f"database error: {redact(str(exc)).strip()}") from exc

    async def history(
        self,
        conn: Conn,
        approval_id: int,
        now: datetime,
        *,
        event_type: str = "transition",
        from_state: str | None = None,
        to_state: str | None = None,
        message: str | None = None,
        call: CallRecord | None = None,
    ) -> None:
        await conn.execute(
            QUERIES["insert_approval_event"],
            {
                "approval_id": approval_id,
                "at": now,
                "event_type": event_type,
                "from_state": from_state,
                "to_state": to_state,
                "endpoint": call.endpoint if call else None,
                "http_status": call.http_status if call else None,
                "code": call.code if call else None,
                "duration_ms": call.duration_ms if call else None,
                "message": message,
                "actor": self.actor,
            },
        )

    async def calls(
        self, conn: Conn, approval_id: int, now: datetime, calls: Sequence[CallRecord]
    ) -> None:
        """Record DingTalk calls in the approval's history and the monthly usage."""
        for call in calls:
            await self.history(
                conn, approval_id, now, event_type="call", call=call, message=call.message
            )
            await conn.execute(
                QUERIES["add_usage"],
                {"month": usage_month(now), "purpose": call.purpose, "calls": 1},
            )

    async def fetch_one(self, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        async with self.transaction() as conn:
            return await (await conn.execute(QUERIES[name], params)).fetchone()

    async def fetch_all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.transaction() as conn:
            return await (await conn.execute(QUERIES[name], params)).fetchall()


def usage_month(now: datetime) -> date:
    """The first day of DingTalk's month (China time) containing ``now``."""
    return month_start(now).date()


class IngestStore(BaseStore):
    """Outbox rows in, approval rounds out."""

    async def ingest(self, limit: int, now: datetime, decide: Decide) -> int:
        """Claim up to ``limit`` outbox rows, apply ``decide`` to each, mark them consumed.

        Runs on one replica at a time (a transaction advisory lock), which keeps the
        order of rows for the same business key; returns 0 when another replica holds it.
        """
        async with self.transaction() as conn:
            locked = await (await conn.execute(QUERIES["try_lock_ingest"])).fetchone()
            if not locked or not locked["locked"]:
                return 0
            rows = await (
                await conn.execute(QUERIES["claim_outbox_batch"], {"limit": limit})
            ).fetchall()
            for row in rows:
                item = OutboxRow(**{k: row[k] for k in OutboxRow.__dataclass_fields__})
                latest = await self._latest(conn, item)
                for decision in decide(item, latest):
                    await self._apply(conn, item, latest, decision, now)
            if rows:
                await conn.execute(
                    QUERIES["mark_outbox_consumed"], {"now": now, "ids": [r["id"] for r in rows]}
                )
            return len(rows)

    async def _latest(self, conn: Conn, item: OutboxRow) -> LatestRound | None:
        params = {"kind": item.kind, "business_key": item.business_key}
        row = await (await conn.execute(QUERIES["select_latest_round"], params)).fetchone()
        if row is None:
            return None
        return LatestRound(
            id=row["id"],
            round=row["round"],
            state=ApprovalState(row["state"]),
            cancel_requested=row["cancel_requested_at"] is not None,
        )

    async def _apply(
        self,
        conn: Conn,
        item: OutboxRow,
        latest: LatestRound | None,
        decision: IngestDecision,
        now: datetime,
    ) -> None:
        if isinstance(decision, CancelRound):
            await conn.execute(QUERIES["request_cancel"], {"id": decision.approval_id, "now": now})
            await self.history(
                conn,
                decision.approval_id,
                now,
                event_type="note",
                message=f"cancel requested by outbox row {item.id}",
            )
            return
        if isinstance(decision, NoteOnRound):
            await self.history(
                conn, decision.approval_id, now, event_type="note", message=decision.message
            )
            return
        await self._new_round(conn, item, latest, decision, now)

    async def _new_round(
        self,
        conn: Conn,
        item: OutboxRow,
        latest: LatestRound | None,
        decision: NewRound,
        now: datetime,
    ) -> None:
        row = await (
            await conn.execute(
                QUERIES["insert_approval"],
                {
                    "kind": item.kind,
                    "business_key": item.business_key,
                    "round": latest.round + 1 if latest else 1,
                    "outbox_id": item.id,
                    "state": decision.state.value,
                    "payload": Jsonb(item.payload),
                    "originator": decision.originator,
                    "dept_id": decision.dept_id,
                    "process_code": None,
                    "form_values": None,
                    "error_code": decision.error_code,
                    "error_message": decision.error_message,
                    "now": now,
                    "captured_at": item.created_at,
                },
            )
        ).fetchone()
        assert row is not None
        await self.history(
            conn,
            row["id"],
            now,
            to_state=decision.state.value,
            message=decision.error_message or f"captured from outbox row {item.id}",
        )


def submit_item(row: dict[str, Any]) -> SubmitItem:
    fields = SubmitItem.__dataclass_fields__
    return SubmitItem(**{k: row[k] for k in fields if k in row})


def jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def ids(rows: Iterable[dict[str, Any]]) -> list[int]:
    return [int(r["id"]) for r in rows]


class ControlStore(BaseStore):
    """Cluster-wide switches (pauses) and the monthly usage counters."""

    async def get(self, name: str, now: datetime) -> dict[str, Any] | None:
        return await self.fetch_one("select_control", {"name": name, "now": now})

    async def set(self, name: str, reason: str, until: datetime | None, now: datetime) -> None:
        params = {"name": name, "reason": reason, "until": until, "now": now, "set_by": self.actor}
        async with self.transaction() as conn:
            await conn.execute(QUERIES["set_control"], params)

    async def clear(self, name: str) -> None:
        async with self.transaction() as conn:
            await conn.execute(QUERIES["clear_control"], {"name": name})

    async def add_usage(self, now: datetime, purpose: str, calls: int = 1) -> None:
        async with self.transaction() as conn:
            await conn.execute(
                QUERIES["add_usage"],
                {"month": usage_month(now), "purpose": purpose, "calls": calls},
            )

    async def usage(self, now: datetime) -> dict[str, int]:
        rows = await self.fetch_all("select_usage", {"month": usage_month(now)})
        return {r["purpose"]: int(r["calls"]) for r in rows}

    async def claim_turn(self, name: str, now: datetime, until: datetime) -> bool:
        """Whether this replica runs periodic job ``name`` now (one replica per interval)."""
        params = {"name": f"turn:{name}", "now": now, "until": until, "set_by": self.actor}
        return await self.fetch_one("claim_turn", params) is not None

    async def purge(self, cutoff: datetime, limit: int = 5000) -> int:
        """Retention: delete consumed outbox rows and processed events older than ``cutoff``."""
        removed = 0
        async with self.transaction() as conn:
            for query in ("delete_old_outbox", "delete_old_inbox"):
                cursor = await conn.execute(QUERIES[query], {"cutoff": cutoff, "limit": limit})
                removed += cursor.rowcount
        return removed

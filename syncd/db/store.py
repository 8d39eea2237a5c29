"""``PostgresStore``: the pipeline's view of PostgreSQL, in domain verbs.

One method, one transaction, opened and committed here; pipeline code never sees a
connection. State changes are guarded transitions: each UPDATE names the states it may
move from and returns the old state, so a lost lease or a duplicate event changes
nothing. Every transition and every DingTalk call is appended to
``syncd.approval_event`` in the same transaction. All times come from the caller's clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
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
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; psycopg errors become ``StoreError``. syncd's pools are in
        autocommit mode: a statement run on it outside :meth:`transaction` commits alone,
        without the two extra round trips of BEGIN and COMMIT."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"database error: {redact(str(exc)).strip()}") from exc

    @asynccontextmanager
    async def transaction(self, *, pipelined: bool = False) -> AsyncIterator[Conn]:
        """A connection inside one transaction; psycopg errors become ``StoreError``.

        ``pipelined`` sends statements without waiting for each result (a fetch waits),
        COMMIT included: a transaction that only writes after its first read costs two
        round trips, whatever its length.
        """
        async with self.connection() as conn:
            if pipelined:
                async with conn.pipeline(), conn.transaction():
                    yield conn
            else:
                async with conn.transaction():
                    yield conn

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
    ) -> None:
        """Append one line to an approval's history."""
        line = history_line(
            approval_id,
            event_type=event_type,
            from_state=from_state,
            to_state=to_state,
            message=message,
        )
        await self.log(conn, now, [line])

    async def log(self, conn: Conn, now: datetime, lines: Sequence[HistoryLine]) -> None:
        """Append lines (:func:`history_line`) to approvals' history, in one statement."""
        if lines:
            params = {"at": now, "actor": self.actor, "events": Jsonb(list(lines))}
            await conn.execute(QUERIES["insert_approval_events"], params)

    async def calls(
        self,
        conn: Conn,
        approval_id: int,
        now: datetime,
        calls: Sequence[CallRecord],
        *lines: HistoryLine,
    ) -> None:
        """Record DingTalk calls in the approval's history (then ``lines``, in the same
        statement) and in the monthly usage (one statement per purpose)."""
        await self.log(conn, now, [call_line(approval_id, call) for call in calls] + list(lines))
        for purpose, count in sorted(Counter(call.purpose for call in calls).items()):
            params = {"month": usage_month(now), "purpose": purpose, "calls": count}
            await conn.execute(QUERIES["add_usage"], params)

    async def fetch_one(self, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Run one statement on its own (it commits alone) and return its first row."""
        async with self.connection() as conn:
            return await (await conn.execute(QUERIES[name], params)).fetchone()

    async def fetch_all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one statement on its own (it commits alone) and return its rows."""
        async with self.connection() as conn:
            return await (await conn.execute(QUERIES[name], params)).fetchall()


#: One line of history as :meth:`BaseStore.log` takes it (the JSON object the query reads).
HistoryLine = dict[str, Any]


def history_line(
    approval_id: int,
    *,
    event_type: str = "transition",
    from_state: str | None = None,
    to_state: str | None = None,
    message: str | None = None,
) -> HistoryLine:
    """A transition (or, with ``event_type="note"``, a note) for :meth:`BaseStore.log`."""
    return {
        "approval_id": approval_id,
        "event_type": event_type,
        "from_state": from_state,
        "to_state": to_state,
        "message": message,
    }


def call_line(approval_id: int, call: CallRecord) -> HistoryLine:
    """A DingTalk call for :meth:`BaseStore.log` (and, with its purpose, the usage)."""
    return {
        "approval_id": approval_id,
        "event_type": "call",
        "purpose": call.purpose,
        "endpoint": call.endpoint,
        "http_status": call.http_status,
        "code": call.code,
        "duration_ms": call.duration_ms,
        "message": call.message,
    }


def usage_month(now: datetime) -> date:
    """The first day of DingTalk's month (China time) containing ``now``."""
    return month_start(now).date()


class IngestStore(BaseStore):
    """Outbox rows in, approval rounds out."""

    async def ingest(self, limit: int, now: datetime, decide: Decide) -> int:
        """Claim up to ``limit`` outbox rows, apply ``decide`` to each, mark them consumed.

        Runs on one replica at a time (a transaction advisory lock), which keeps the
        order of rows for the same business key; returns 0 when another replica holds it.
        The batch is set-based: the latest rounds are read in one statement, and the new
        rounds, cancel requests and history lines are written a few statements at a time.
        """
        async with self.transaction() as conn:
            locked = await (await conn.execute(QUERIES["try_lock_ingest"])).fetchone()
            if not locked or not locked["locked"]:
                return 0
            rows = await (
                await conn.execute(QUERIES["claim_outbox_batch"], {"limit": limit})
            ).fetchall()
            if not rows:
                return 0
            items = [OutboxRow(**{k: r[k] for k in OutboxRow.__dataclass_fields__}) for r in rows]
            batch = _IngestBatch(await self._latest(conn, items))
            for item in items:
                if batch.has_new_round(item):
                    # The id of that round is needed before this row can be decided.
                    await self._write(conn, batch, now)
                for decision in decide(item, batch.latest.get(_key(item))):
                    batch.add(item, decision)
            await self._write(conn, batch, now)
            params = {"now": now, "ids": [item.id for item in items]}
            await conn.execute(QUERIES["mark_outbox_consumed"], params)
            return len(rows)

    async def _latest(self, conn: Conn, items: Sequence[OutboxRow]) -> dict[Key, LatestRound]:
        keys = sorted({_key(item) for item in items})
        params = {"kinds": [k for k, _ in keys], "business_keys": [b for _, b in keys]}
        rows = await (await conn.execute(QUERIES["select_latest_rounds"], params)).fetchall()
        return {
            (row["kind"], row["business_key"]): LatestRound(
                id=row["id"],
                round=row["round"],
                state=ApprovalState(row["state"]),
                cancel_requested=row["cancel_requested_at"] is not None,
            )
            for row in rows
        }

    async def _write(self, conn: Conn, batch: _IngestBatch, now: datetime) -> None:
        """Write what the batch decided so far; the new rounds become the keys' latest."""
        if batch.cancels:
            await conn.execute(QUERIES["request_cancels"], {"ids": batch.cancels, "now": now})
        lines = batch.lines
        if batch.rounds:
            params = {"rounds": Jsonb([r.row for r in batch.rounds]), "now": now}
            cursor = await conn.execute(QUERIES["insert_approvals"], params)
            created = {
                (r["kind"], r["business_key"], r["round"]): r["id"] for r in await cursor.fetchall()
            }
            for new in batch.rounds:
                approval_id = created[(new.item.kind, new.item.business_key, new.round)]
                batch.latest[_key(new.item)] = LatestRound(
                    id=approval_id, round=new.round, state=new.state, cancel_requested=False
                )
                lines.append(
                    history_line(approval_id, to_state=new.state.value, message=new.message)
                )
        await self.log(conn, now, lines)
        batch.clear()


Key = tuple[str, str]


def _key(item: OutboxRow) -> Key:
    return (item.kind, item.business_key)


@dataclass(frozen=True)
class _NewRoundRow:
    item: OutboxRow
    round: int
    state: ApprovalState
    message: str
    row: dict[str, Any]


@dataclass
class _IngestBatch:
    """Ingest's decisions not yet written, and each business key's latest round."""

    latest: dict[Key, LatestRound]
    rounds: list[_NewRoundRow] = field(default_factory=list)
    cancels: list[int] = field(default_factory=list)
    lines: list[HistoryLine] = field(default_factory=list)
    keys: set[Key] = field(default_factory=set)  # of the new rounds not written yet

    def has_new_round(self, item: OutboxRow) -> bool:
        return _key(item) in self.keys

    def add(self, item: OutboxRow, decision: IngestDecision) -> None:
        if isinstance(decision, CancelRound):
            self.cancels.append(decision.approval_id)
            message = f"cancel requested by outbox row {item.id}"
            self.lines.append(
                history_line(decision.approval_id, event_type="note", message=message)
            )
            latest = self.latest.get(_key(item))
            if latest is not None and latest.id == decision.approval_id:
                self.latest[_key(item)] = replace(latest, cancel_requested=True)
        elif isinstance(decision, NoteOnRound):
            line = history_line(decision.approval_id, event_type="note", message=decision.message)
            self.lines.append(line)
        else:
            latest = self.latest.get(_key(item))
            round_ = latest.round + 1 if latest else 1
            row = {
                "kind": item.kind,
                "business_key": item.business_key,
                "round": round_,
                "outbox_id": item.id,
                "state": decision.state.value,
                "payload": item.payload,
                "originator": decision.originator,
                "dept_id": decision.dept_id,
                "error_code": decision.error_code,
                "error_message": decision.error_message,
                "captured_at": item.created_at.isoformat(),
            }
            message = decision.error_message or f"captured from outbox row {item.id}"
            self.rounds.append(_NewRoundRow(item, round_, decision.state, message, row))
            self.keys.add(_key(item))

    def clear(self) -> None:
        self.rounds.clear()
        self.cancels.clear()
        self.keys.clear()
        self.lines = []


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

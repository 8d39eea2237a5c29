"""What syncd's PostgreSQL stores share, and ``PostgresControlStore``.

Each stage has its store (``PostgresApplyStore``, ``PostgresPollStore``, ...), each the
implementation of its port in ``syncd.ports.stores``, in domain verbs. One method, one
transaction, opened and committed there; pipeline code never sees a connection. State
changes are guarded transitions: each UPDATE names the states it may move from and
returns the old state, so a lost lease or a duplicate event changes nothing. Every
transition and every DingTalk call is appended to ``syncd.approval_event`` in the same
transaction. All times come from the caller's clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.db.text import pg_text
from syncd.domain import ApprovalRef, ApprovalState, CallRecord, SubmitItem, month_start
from syncd.errors import StoreError

Conn = psycopg.AsyncConnection[dict[str, Any]]


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
        statement) and the metered ones in the monthly usage (one statement per purpose)."""
        await self.log(conn, now, [call_line(approval_id, call) for call in calls] + list(lines))
        metered = Counter(call.purpose for call in calls if call.metered)
        for purpose, count in sorted(metered.items()):
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
    """A transition (or, with ``event_type="note"``, a note) for :meth:`BaseStore.log`;
    the message as PostgreSQL can store it (:func:`~syncd.db.text.pg_text`)."""
    return {
        "approval_id": approval_id,
        "event_type": event_type,
        "from_state": from_state,
        "to_state": to_state,
        "message": pg_text(message),
    }


def call_line(approval_id: int, call: CallRecord) -> HistoryLine:
    """A DingTalk call for :meth:`BaseStore.log` (and, with its purpose, the usage). Its
    code and message are DingTalk's text, as PostgreSQL can store it: a NUL in them must
    not make the record fail every time it is tried."""
    return {
        "approval_id": approval_id,
        "event_type": "call",
        "purpose": call.purpose,
        "endpoint": call.endpoint,
        "http_status": call.http_status,
        "code": pg_text(call.code),
        "duration_ms": call.duration_ms,
        "message": pg_text(call.message),
        "metered": call.metered,
    }


def usage_month(now: datetime) -> date:
    """The first day of DingTalk's month (China time) containing ``now``."""
    return month_start(now).date()


def approval_ref(row: dict[str, Any]) -> ApprovalRef:
    fields = {k: row[k] for k in ApprovalRef.__dataclass_fields__}
    return ApprovalRef(**fields | {"state": ApprovalState(row["state"])})


def submit_item(row: dict[str, Any]) -> SubmitItem:
    fields = SubmitItem.__dataclass_fields__
    return SubmitItem(**{k: row[k] for k in fields if k in row})


def jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def ids(rows: Iterable[dict[str, Any]]) -> list[int]:
    return [int(r["id"]) for r in rows]


class PostgresControlStore(BaseStore):
    """Cluster-wide switches (pauses) and the monthly usage counters (implements
    ``syncd.ports.ControlStore``)."""

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

"""``PostgresIngestStore``: outbox rows in, approval rounds out.

The normal case is one transaction per batch, set-based: the rows are claimed in one
statement, the latest rounds of their keys read in one, and the new rounds, cancel
requests and history lines written a few statements at a time. The payloads are copied
into the rounds inside PostgreSQL, so what an application wrote is stored as it was.

When the database refuses that batch because of a row's data (a constraint, a value out
of range, an index entry too large: see :func:`row_data_error`), the batch is done again
row by row in one transaction, each row under a savepoint. A row the database still
refuses is quarantined — a line in ``syncd.outbox_quarantine`` with the error, the outbox
row consumed and kept — and the rows behind it are ingested as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, HistoryLine, history_line
from syncd.domain import (
    PAYLOAD_MAX_BYTES,
    PAYLOAD_MAX_DEPTH,
    ApprovalState,
    CancelRound,
    IngestDecision,
    IngestResult,
    LatestRound,
    NoteOnRound,
    OutboxRow,
    Quarantined,
    Unreadable,
)
from syncd.domain_comments import CommentOnRound
from syncd.errors import StoreError

Decide = Callable[[OutboxRow, LatestRound | None], Sequence[IngestDecision]]
Key = tuple[str, str]

#: SQLSTATE classes that say a row's data cannot be stored: data exception (a value out of
#: range, not representable), integrity constraint violation, program limit exceeded (an
#: index entry too large), internal error. Any other failure (connection, locks,
#: serialisation, resources, privileges, a missing object) is about the database, not
#: the row: the batch is left for the next attempt, and nothing is quarantined.
ROW_DATA_ERRORS = frozenset({"22", "23", "54", "XX"})
#: A payload stored in more bytes than this is not even turned into JSON text.
_MAX_STORED = 16 * PAYLOAD_MAX_BYTES
_ERROR_MAX = 2000


def row_data_error(exc: BaseException | None) -> bool:
    """Whether a database error is one a row's data can cause (see ``ROW_DATA_ERRORS``)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ROW_DATA_ERRORS


def read_payload(text: str | None, size: int) -> Any:
    """The payload's JSON value, or :class:`Unreadable` (too large, too deeply nested for
    Python's reader, a number with more digits than Python converts), saying what to do."""
    if text is None:
        return Unreadable(
            f"payload: {size} bytes, more than the {PAYLOAD_MAX_BYTES} bytes of JSON syncd "
            "reads; leave out what the form does not use"
        )
    try:
        return json.loads(text)
    except RecursionError:
        return Unreadable(
            f"payload: nested more than {PAYLOAD_MAX_DEPTH} levels deep; flatten it (the form "
            "only reads a few levels)"
        )
    except ValueError as exc:
        if "digits" in str(exc):
            return Unreadable(
                "payload: a number has more digits than syncd reads (4300); write such a "
                "number as a string"
            )
        return Unreadable(f"payload: syncd cannot read it ({exc})")


def outbox_row(row: dict[str, Any]) -> OutboxRow:
    columns = {k: row[k] for k in OutboxRow.__dataclass_fields__ if k != "payload"}
    return OutboxRow(**columns, payload=read_payload(row["payload"], row["payload_bytes"]))


def _payload_limits() -> dict[str, int]:
    return {"max_bytes": PAYLOAD_MAX_BYTES, "max_stored": _MAX_STORED}


class PostgresIngestStore(BaseStore):
    """Outbox rows in, approval rounds out (implements ``syncd.ports.IngestStore``)."""

    async def ingest(self, limit: int, now: datetime, decide: Decide) -> IngestResult:
        """Claim up to ``limit`` outbox rows, apply ``decide`` to each, mark them consumed.

        Runs on one replica at a time (a transaction advisory lock), which keeps the
        order of rows for the same business key; handles nothing when another replica
        holds it. A batch the database refuses because of a row's data is done again row
        by row, and the rows it still refuses are quarantined (see the module's doc).
        """
        try:
            return await self._batch(limit, now, decide)
        except StoreError as exc:
            if not row_data_error(exc.__cause__):
                raise
        return await self._row_by_row(limit, now, decide)

    async def _batch(self, limit: int, now: datetime, decide: Decide) -> IngestResult:
        async with self.transaction() as conn:
            if not await _locked(conn):
                return IngestResult()
            params = {"limit": limit, **_payload_limits()}
            cursor = await conn.execute(QUERIES["claim_outbox_batch"], params)
            items = [outbox_row(r) for r in await cursor.fetchall()]
            if items:
                await self._ingest(conn, items, now, decide)
            return IngestResult(tuple(item.id for item in items))

    async def _row_by_row(self, limit: int, now: datetime, decide: Decide) -> IngestResult:
        """The same batch, each row under its own savepoint; the refused ones quarantined."""
        quarantined: list[Quarantined] = []
        async with self.transaction() as conn:
            if not await _locked(conn):
                return IngestResult()
            cursor = await conn.execute(QUERIES["claim_outbox_ids"], {"limit": limit})
            ids = [int(r["id"]) for r in await cursor.fetchall()]
            for outbox_id in ids:
                try:
                    async with conn.transaction():
                        params = {"id": outbox_id, **_payload_limits()}
                        cursor = await conn.execute(QUERIES["select_outbox_row"], params)
                        items = [outbox_row(r) for r in await cursor.fetchall()]
                        await self._ingest(conn, items, now, decide)
                except psycopg.Error as exc:
                    if not row_data_error(exc):
                        raise
                    quarantined.append(await self._quarantine(conn, outbox_id, now, exc))
        return IngestResult(tuple(ids), tuple(quarantined))

    async def _quarantine(
        self, conn: Conn, outbox_id: int, now: datetime, exc: psycopg.Error
    ) -> Quarantined:
        sqlstate = exc.sqlstate or ""
        error = exc.diag.message_primary or str(exc).strip()
        if exc.diag.message_hint:
            error = f"{error} (hint: {exc.diag.message_hint})"
        error = redact(error)[:_ERROR_MAX]
        params = {"id": outbox_id, "now": now, "error_code": sqlstate, "error_message": error}
        row = await (await conn.execute(QUERIES["quarantine_outbox_row"], params)).fetchone()
        kind, key = (row["kind"], row["business_key"]) if row else ("", "")
        return Quarantined(outbox_id, kind, sqlstate, error, business_key=key)

    async def _ingest(
        self, conn: Conn, items: Sequence[OutboxRow], now: datetime, decide: Decide
    ) -> None:
        """Decide and write ``items`` (in order: a row sees the rounds made before it)."""
        batch = _IngestBatch(await self._latest(conn, items))
        for item in items:
            if batch.has_new_round(item):
                # The id of that round is needed before this row can be decided.
                await self._write(conn, batch, now)
            for decision in decide(item, batch.latest.get(item.key)):
                batch.add(item, decision)
        await self._write(conn, batch, now)
        params = {"now": now, "ids": [item.id for item in items]}
        await conn.execute(QUERIES["mark_outbox_consumed"], params)

    async def _latest(self, conn: Conn, items: Sequence[OutboxRow]) -> dict[Key, LatestRound]:
        keys = sorted({item.key for item in items})
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
        if batch.comments:
            params = {"comments": Jsonb(batch.comments), "now": now}
            await conn.execute(QUERIES["insert_comments"], params)
        lines = batch.lines
        if batch.rounds:
            params = {"rounds": Jsonb([r.row for r in batch.rounds]), "now": now}
            cursor = await conn.execute(QUERIES["insert_approvals"], params)
            created = {
                (r["kind"], r["business_key"], r["round"]): r["id"] for r in await cursor.fetchall()
            }
            for new in batch.rounds:
                approval_id = created[(*new.item.key, new.round)]
                batch.latest[new.item.key] = LatestRound(
                    id=approval_id, round=new.round, state=new.state, cancel_requested=False
                )
                lines.append(
                    history_line(approval_id, to_state=new.state.value, message=new.message)
                )
        await self.log(conn, now, lines)
        batch.clear()


async def _locked(conn: Conn) -> bool:
    row = await (await conn.execute(QUERIES["try_lock_ingest"])).fetchone()
    return bool(row and row["locked"])


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
    comments: list[dict[str, Any]] = field(default_factory=list)
    lines: list[HistoryLine] = field(default_factory=list)
    keys: set[Key] = field(default_factory=set)  # of the new rounds not written yet

    def has_new_round(self, item: OutboxRow) -> bool:
        return item.key in self.keys

    def add(self, item: OutboxRow, decision: IngestDecision) -> None:
        if isinstance(decision, CancelRound):
            self.cancels.append(decision.approval_id)
            message = f"cancel requested by outbox row {item.id}"
            self.lines.append(
                history_line(decision.approval_id, event_type="note", message=message)
            )
            latest = self.latest.get(item.key)
            if latest is not None and latest.id == decision.approval_id:
                self.latest[item.key] = replace(latest, cancel_requested=True)
        elif isinstance(decision, NoteOnRound):
            line = history_line(decision.approval_id, event_type="note", message=decision.message)
            self.lines.append(line)
        elif isinstance(decision, CommentOnRound):
            self._comment(item, decision)
        else:
            latest = self.latest.get(item.key)
            round_ = latest.round + 1 if latest else 1
            kind, business_key = item.key
            row = {
                "kind": kind,
                "business_key": business_key,
                "round": round_,
                "outbox_id": item.id,
                "state": decision.state.value,
                "keep_payload": decision.keep_payload,
                "originator": decision.originator,
                "dept_id": decision.dept_id,
                "error_code": decision.error_code,
                "error_message": decision.error_message,
            }
            message = decision.error_message or f"captured from outbox row {item.id}"
            self.rounds.append(_NewRoundRow(item, round_, decision.state, message, row))
            self.keys.add(item.key)

    def _comment(self, item: OutboxRow, decision: CommentOnRound) -> None:
        comment: dict[str, Any] = {"approval_id": decision.approval_id, "outbox_id": item.id}
        comment.update(user_id=decision.user_id, text=decision.text, error=decision.error)
        comment.update(files=decision.files)
        self.comments.append({**comment, "n": len(self.comments)})
        message = decision.error or f"comment from outbox row {item.id} waits for its instance"
        self.lines.append(history_line(decision.approval_id, event_type="note", message=message))

    def clear(self) -> None:
        self.rounds.clear()
        self.cancels.clear()
        self.comments.clear()
        self.keys.clear()
        self.lines = []

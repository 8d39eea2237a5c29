"""``MemoryIngestStore``: outbox rows in, approval rounds out, as ``PostgresIngestStore``
does it (``claim_outbox_batch``, ``select_latest_rounds``, ``insert_approvals``, the
row-by-row retry that quarantines the rows the database refuses)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from syncd.domain import (
    CancelRound,
    IngestDecision,
    IngestResult,
    LatestRound,
    NewRound,
    NoteOnRound,
    OutboxRow,
    Quarantined,
)
from syncd.domain_comments import CommentOnRound
from tests.fakes.memory import MemoryDb
from tests.fakes.tables import OutboxEntry, Tables

Decide = Callable[[OutboxRow, LatestRound | None], Sequence[IngestDecision]]
#: The SQLSTATE with which the database refuses to store a row's data, or None.
Refuse = Callable[[OutboxRow], str | None]


class _Refused(Exception):
    """The batch hit a row the database refuses: roll it back, go row by row."""


class MemoryIngestStore:
    """``IngestStore`` over a :class:`MemoryDb`; ``refuse`` plays the database refusing a
    row's data (a constraint, an index entry too large): see ``PostgresIngestStore``."""

    def __init__(self, db: MemoryDb, *, refuse: Refuse | None = None) -> None:
        self.db = db
        self.refuse = refuse or (lambda row: None)

    async def ingest(self, limit: int, now: datetime, decide: Decide) -> IngestResult:
        try:
            with self.db.transaction("ingest") as t:
                rows = _claim_outbox(t, limit)
                for row in rows:
                    self._one(t, row, now, decide, batch=True)
                return IngestResult(tuple(row.id for row in rows))
        except _Refused:
            pass
        quarantined: list[Quarantined] = []
        with self.db.transaction("ingest") as t:
            rows = _claim_outbox(t, limit)
            for row in rows:
                if (found := self._one(t, row, now, decide, batch=False)) is not None:
                    quarantined.append(found)
            return IngestResult(tuple(row.id for row in rows), tuple(quarantined))

    def _one(
        self, t: Tables, row: OutboxRow, now: datetime, decide: Decide, *, batch: bool
    ) -> Quarantined | None:
        """Decide one row and write what it decided (``claim_outbox_batch`` order: a row
        sees the rounds made before it); a refused row is quarantined, row by row."""
        decisions = decide(row, self._latest(t, row))
        sqlstate = self.refuse(row)
        if sqlstate is not None:
            if batch:
                raise _Refused
            t.outbox[row.id].consumed_at = now
            t.quarantine.append((row.id, sqlstate))
            return Quarantined(row.id, row.kind, sqlstate, "refused by the database")
        for decision in decisions:
            self._apply(t, row, decision, now)
        t.outbox[row.id].consumed_at = now
        return None

    def _latest(self, t: Tables, row: OutboxRow) -> LatestRound | None:
        """``select_latest_rounds``: the key's newest round."""
        rounds = [a for a in t.approvals.values() if (a.kind, a.business_key) == row.key]
        if not rounds:
            return None
        latest = max(rounds, key=lambda a: a.round)
        return LatestRound(
            latest.id, latest.round, latest.state, latest.cancel_requested_at is not None
        )

    def _apply(self, t: Tables, row: OutboxRow, decision: IngestDecision, now: datetime) -> None:
        if isinstance(decision, CancelRound):
            approval = t.approvals[decision.approval_id]
            approval.cancel_requested_at = approval.cancel_requested_at or now
            approval.updated_at = now
            self.db.log(
                approval.id, now, "note", message=f"cancel requested by outbox row {row.id}"
            )
        elif isinstance(decision, NoteOnRound):
            self.db.log(decision.approval_id, now, "note", message=decision.message)
        elif isinstance(decision, CommentOnRound):  # syncd.comment is not faked: a note only
            message = decision.error or f"comment from outbox row {row.id} waits for its instance"
            self.db.log(decision.approval_id, now, "note", message=message)
        else:
            self._new_round(t, row, decision, now)

    def _new_round(self, t: Tables, row: OutboxRow, decision: NewRound, now: datetime) -> None:
        """``insert_approvals``: the payload as stored (``{}`` without ``keep_payload``)."""
        latest = self._latest(t, row)
        kind, business_key = row.key
        approval = self.db.add_approval(
            kind=kind,
            business_key=business_key,
            round=latest.round + 1 if latest else 1,
            outbox_id=row.id,
            state=decision.state,
            payload=row.payload if decision.keep_payload else {},
            originator=decision.originator,
            dept_id=decision.dept_id,
            last_error_code=decision.error_code,
            last_error_message=decision.error_message,
            next_attempt_at=now,
            captured_at=row.created_at,
            updated_at=now,
        )
        message = decision.error_message or f"captured from outbox row {row.id}"
        self.db.log(approval.id, now, "transition", None, decision.state.value, message)


def _claim_outbox(t: Tables, limit: int) -> list[OutboxRow]:
    """``claim_outbox_batch``: unconsumed rows in arrival order."""
    due = sorted((e for e in t.outbox.values() if e.consumed_at is None), key=lambda e: e.id)
    return [_outbox_row(e) for e in due[:limit]]


def _outbox_row(entry: OutboxEntry) -> OutboxRow:
    return OutboxRow(
        id=entry.id,
        created_at=entry.created_at,
        kind=entry.kind,
        business_key=entry.business_key,
        action=entry.action,
        payload=entry.payload,
        originator=entry.originator,
    )

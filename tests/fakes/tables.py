"""syncd's tables as rows in memory, and the copy a transaction rolls back to.

Each row class holds the columns of its table that the pipeline's stores read or write;
:class:`Tables` is every table a store may change, :class:`Snapshot` what one
transaction found (the same row objects are restored: tests hold on to rows).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from syncd.domain import ApprovalRef, ApprovalState, TaskRecord

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ApprovalRow:
    """One row of ``syncd.approval`` (the columns the pipeline's stores read or write)."""

    id: int
    kind: str
    business_key: str
    round: int
    state: ApprovalState
    payload: Any = field(default_factory=dict)
    outbox_id: int | None = None
    originator: str | None = None
    originator_user_id: str | None = None
    dept_id: int | None = None
    process_code: str | None = None
    form_values: Any = None
    instance_id: str | None = None
    business_id: str | None = None
    attempts: int = 0
    next_attempt_at: datetime = EPOCH
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None
    dingtalk_status: str | None = None
    dingtalk_result: str | None = None
    calls_spent: int = 0
    cancel_requested_at: datetime | None = None
    last_event_at: datetime | None = None
    next_poll_at: datetime | None = None
    captured_at: datetime = EPOCH
    submitted_at: datetime | None = None
    instance_created_at: datetime | None = None
    finished_at: datetime | None = None
    written_back_at: datetime | None = None
    writeback_attempts: int = 0
    updated_at: datetime = EPOCH
    approver: str | None = None
    remark: str | None = None

    def ref(self) -> ApprovalRef:
        return ApprovalRef(
            id=self.id,
            kind=self.kind,
            business_key=self.business_key,
            round=self.round,
            state=self.state,
            instance_id=self.instance_id,
            instance_created_at=self.instance_created_at,
        )


@dataclass
class InboxRow:
    """One row of ``syncd.inbox``."""

    id: int
    dedup_key: str
    channel: str
    event_type: str
    instance_id: str | None
    payload: Any
    received_at: datetime
    processed_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass
class OutboxEntry:
    """One row of ``syncd.outbox`` as ingest reads it (the payload already read)."""

    id: int
    created_at: datetime
    kind: str
    business_key: str
    action: str
    payload: Any
    originator: str | None
    consumed_at: datetime | None = None


@dataclass(frozen=True)
class Line:
    """One line of ``syncd.approval_event``: a transition, a note or a DingTalk call."""

    approval_id: int
    at: datetime
    event_type: str
    from_state: str | None = None
    to_state: str | None = None
    message: str | None = None
    endpoint: str | None = None
    code: str | None = None


@dataclass
class TaskRow:
    """One row of ``syncd.task``; ``id`` orders rows as the identity column does."""

    id: int
    approval_id: int
    record: TaskRecord


@dataclass
class Tables:
    """Everything a transaction may change (copied whole to roll back)."""

    approvals: dict[int, ApprovalRow] = field(default_factory=dict)
    inbox: dict[int, InboxRow] = field(default_factory=dict)
    outbox: dict[int, OutboxEntry] = field(default_factory=dict)
    tasks: dict[tuple[int, str, str], TaskRow] = field(default_factory=dict)
    history: list[Line] = field(default_factory=list)
    control: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: Counter[tuple[date, str]] = field(default_factory=Counter)
    notified: list[int] = field(default_factory=list)  # pg_notify('syncd_result', id)
    #: Business tables of :class:`~tests.fakes.apply.MemoryTarget`: name → key → row.
    business: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    quarantine: list[tuple[int, str]] = field(default_factory=list)
    serial: int = 0


_Saved = list[tuple[Any, Any, Any]]


def _save(table: dict[Any, Any]) -> _Saved:
    return [(key, row, copy.copy(row)) for key, row in table.items()]


def _restore(table: dict[Any, Any], saved: _Saved) -> None:
    """Put the rows back as they were, the same objects (tests hold on to rows)."""
    table.clear()
    for key, row, was in saved:
        if isinstance(row, dict):
            row.clear()
            row.update(was)
        else:
            row.__dict__.update(was.__dict__)
        table[key] = row


@dataclass
class Snapshot:
    """What a transaction found: a copy of each row; the length of the logs."""

    tables: dict[str, _Saved]
    business: dict[str, _Saved]
    usage: Counter[tuple[date, str]]
    lengths: tuple[int, int, int]
    serial: int

    _TABLES = ("approvals", "inbox", "outbox", "tasks", "control")

    @classmethod
    def take(cls, t: Tables) -> Snapshot:
        return cls(
            {name: _save(getattr(t, name)) for name in cls._TABLES},
            {name: _save(rows) for name, rows in t.business.items()},
            Counter(t.usage),
            (len(t.history), len(t.notified), len(t.quarantine)),
            t.serial,
        )

    def restore(self, t: Tables) -> None:
        for name, saved in self.tables.items():
            _restore(getattr(t, name), saved)
        t.business = {}
        for name, saved in self.business.items():
            t.business[name] = {}
            _restore(t.business[name], saved)
        t.usage = self.usage
        history, notified, quarantine = self.lengths
        del t.history[history:], t.notified[notified:], t.quarantine[quarantine:]
        t.serial = self.serial


def lease_free(row: ApprovalRow, now: datetime) -> bool:
    """Whether no lease holds ``row`` at ``now`` (none taken, or it ran out)."""
    return row.lease_expires_at is None or row.lease_expires_at < now

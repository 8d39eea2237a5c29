"""Pure domain types: the approval state machine; comments' in :mod:`syncd.domain_comments`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, get_args

from syncd.domain_comments import CommentOnRound

#: DingTalk counts monthly quotas in China Standard Time.
DINGTALK_TZ = timezone(timedelta(hours=8), "CST")


def month_start(now: datetime) -> datetime:
    """Midnight of the first day of DingTalk's month containing ``now``."""
    local = now.astimezone(DINGTALK_TZ)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    return (month_start(now) + timedelta(days=32)).replace(day=1)


class ApprovalState(StrEnum):
    """States of ``syncd.approval.state`` (each is described in the README's schema section)."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    RUNNING = "running"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELED = "canceled"
    INVALID = "invalid"
    DEAD = "dead"
    UNKNOWN = "unknown"
    DISMISSED = "dismissed"

    @property
    def finished(self) -> bool:
        """DingTalk decided: the outcome is final and is written back."""
        return self in FINISHED

    @property
    def parked(self) -> bool:
        """Needs a person: fix the input or the cause, then ``syncd retry`` (or, when
        it should never be sent, ``syncd dismiss``)."""
        return self in PARKED


_TO_DINGTALK = (ApprovalState.RUNNING, ApprovalState.UNKNOWN)
FINISHED = frozenset({ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.CANCELED})
PARKED = frozenset({ApprovalState.INVALID, ApprovalState.DEAD})
ACTIVE = frozenset({ApprovalState.PENDING, ApprovalState.SUBMITTING, *_TO_DINGTALK})

#: Every allowed move. Finished states never move again; parked ones only by an operator:
#: back to pending (``syncd retry``) or closed for good (``syncd dismiss``). A dismissed
#: round is never sent, retried, counted as parked or alerted on.
TRANSITIONS: dict[ApprovalState, frozenset[ApprovalState]] = {
    ApprovalState.PENDING: frozenset(
        {ApprovalState.SUBMITTING, ApprovalState.INVALID, ApprovalState.CANCELED}
    ),
    ApprovalState.SUBMITTING: frozenset(
        {
            ApprovalState.RUNNING,
            ApprovalState.PENDING,
            ApprovalState.UNKNOWN,
            ApprovalState.INVALID,
            ApprovalState.DEAD,
        }
    ),
    ApprovalState.UNKNOWN: frozenset(
        {ApprovalState.RUNNING, ApprovalState.PENDING, ApprovalState.DEAD}
    ),
    ApprovalState.RUNNING: FINISHED,
    ApprovalState.INVALID: frozenset({ApprovalState.PENDING, ApprovalState.DISMISSED}),
    ApprovalState.DEAD: frozenset({ApprovalState.PENDING, ApprovalState.DISMISSED}),
    ApprovalState.DISMISSED: frozenset(),
    ApprovalState.APPROVED: frozenset(),
    ApprovalState.REJECTED: frozenset(),
    ApprovalState.CANCELED: frozenset(),
}


def can_move(source: ApprovalState, target: ApprovalState) -> bool:
    return target in TRANSITIONS[source]


# --- what the stages claim and decide --------------------------------------------------


#: The longest ``kind`` and ``business_key`` stored as they are: an entry of the unique
#: index on (kind, business_key, round) holds 2704 bytes, 128 + 512 characters fit.
KIND_MAX = 128
BUSINESS_KEY_MAX = 512
#: The largest payload ingest reads, in bytes of its JSON text.
PAYLOAD_MAX_BYTES = 1024 * 1024
#: The deepest nesting of objects and arrays ingest accepts in a payload.
PAYLOAD_MAX_DEPTH = 64


def stored_text(text: str, limit: int) -> str:
    """``text`` as syncd stores it where ``limit`` characters fit: itself when it is short
    enough, else its start, its length and a hash of the whole (so that two long texts
    with the same start stay apart)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    suffix = f"…[{len(text)} characters, sha256 {digest}]"
    return text[: limit - len(suffix)] + suffix


@dataclass(frozen=True)
class Unreadable:
    """An outbox payload ingest did not read into values; ``reason`` says why and what to do."""

    reason: str


@dataclass(frozen=True)
class OutboxRow:
    id: int
    created_at: datetime
    kind: str
    business_key: str
    action: str
    #: The JSON value (any JSON value, null included), or :class:`Unreadable`.
    payload: Any
    originator: str | None
    source_database: str | None = None  # the [databases.<name>] it came from; None: here

    @cached_property
    def key(self) -> tuple[str, str]:
        """(kind, business_key) as stored in ``syncd.approval`` (see :func:`stored_text`)."""
        return stored_text(self.kind, KIND_MAX), stored_text(self.business_key, BUSINESS_KEY_MAX)


@dataclass(frozen=True)
class LatestRound:
    id: int
    round: int
    state: ApprovalState
    cancel_requested: bool


@dataclass(frozen=True)
class NewRound:
    """Ingest decision: start a round, pending or already invalid. Without
    ``keep_payload`` the round's payload is ``{}`` (the outbox row keeps the original)."""

    state: ApprovalState
    originator: str | None = None
    dept_id: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    keep_payload: bool = True


@dataclass(frozen=True)
class CancelRound:
    """Ingest decision: ask for the latest round to be canceled."""

    approval_id: int


@dataclass(frozen=True)
class NoteOnRound:
    """Ingest decision: nothing to do but say why, in the latest round's history."""

    approval_id: int
    message: str


IngestDecision = NewRound | CancelRound | NoteOnRound | CommentOnRound


@dataclass(frozen=True)
class Quarantined:
    """An outbox row the database refused to store as an approval, even on its own: set
    aside in ``syncd.outbox_quarantine`` (and consumed) so the rows behind it go on."""

    outbox_id: int
    kind: str
    sqlstate: str
    error: str
    business_key: str = ""


@dataclass(frozen=True)
class IngestResult:
    """What one committed ingest batch did: the outbox rows it consumed (quarantined ones
    included), and those it quarantined."""

    consumed: tuple[int, ...] = ()
    quarantined: tuple[Quarantined, ...] = ()

    @property
    def handled(self) -> int:
        return len(self.consumed)


@dataclass(frozen=True)
class Intent:
    """What is about to be sent to create one approval's instance (committed first)."""

    approval_id: int
    process_code: str
    form_values: Any
    originator_user_id: str | None = None  # the userId the create names as originator
    dept_id: int | None = None
    note: str | None = None  # how the people were found, for the round's history


@dataclass(frozen=True)
class SubmitItem:
    id: int
    kind: str
    business_key: str
    round: int
    payload: Any
    originator: str | None
    dept_id: int | None
    attempts: int
    captured_at: datetime
    process_code: str | None = None
    form_values: Any = None
    submitted_at: datetime | None = None
    originator_user_id: str | None = None  # the userId an earlier create named


@dataclass(frozen=True)
class CallRecord:
    """One DingTalk call made for an approval, for its history and the usage counters."""

    endpoint: str
    purpose: str
    ok: bool
    duration_ms: int
    code: str | None = None
    http_status: int | None = None
    message: str | None = None
    metered: bool = True  # counts against the monthly quota (contact reads do not)


#: Where an event came from: ``syncd.inbox.channel`` (whose CHECK constraint lists the
#: same values; a test holds them together) and the ``channel`` label of the event metrics.
#: ``poll`` is an outcome learned by reading the instance.
Channel = Literal["stream", "callback", "failed_list", "poll"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)


@dataclass(frozen=True)
class InboxItem:
    id: int
    channel: str
    event_type: str
    instance_id: str | None
    payload: Any
    received_at: datetime
    attempts: int


@dataclass(frozen=True)
class ApprovalRef:
    id: int
    kind: str
    business_key: str
    round: int
    state: ApprovalState
    instance_id: str | None
    instance_created_at: datetime | None


@dataclass(frozen=True)
class TaskRecord:
    """An approver task or operation record, for ``syncd.task``."""

    record_type: str
    record_key: str
    user_id: str | None = None
    activity_id: str | None = None
    status: str | None = None
    result: str | None = None
    operation: str | None = None
    remark: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The node's name (task events carry it as ``activityName``).
    activity_name: str | None = None
    #: The task's links, as DingTalk's GET gives them (opaque).
    pc_url: str | None = None
    mobile_url: str | None = None


@dataclass(frozen=True)
class Decider:
    """Who decided an instance and the last remark on it, as DingTalk's record says."""

    approver: str | None
    remark: str | None


@dataclass(frozen=True)
class Final:
    """DingTalk's final word on an instance. ``decider`` is set when it comes from the
    instance itself (a GET); from an event, it is derived from the recorded tasks."""

    state: ApprovalState
    dingtalk_status: str
    dingtalk_result: str | None
    finished_at: datetime | None
    business_id: str | None = None
    decider: Decider | None = None
    #: The instance's link, when the event that said it carried one.
    url: str | None = None


@dataclass(frozen=True)
class PollItem:
    id: int
    kind: str
    business_key: str
    round: int
    instance_id: str
    instance_created_at: datetime | None
    last_event_at: datetime | None
    captured_at: datetime


@dataclass(frozen=True)
class CancelItem:
    id: int
    kind: str
    business_key: str
    instance_id: str
    originator: str | None


@dataclass(frozen=True)
class FinishResult:
    """What ``finish`` did: moved to a final state, and wrote the outcome back."""

    moved: bool
    written: bool
    error: str | None = None
    calls_spent: int | None = None


#: States a business row may show before DingTalk decides: the instance was created
#: (``submitted``), its tasks are known (``running``), or the round is parked.
PROGRESS_STATES = ("submitted", "running", "invalid", "dead")
#: Every status a write-back may write, in the order a round goes through them.
SHOWN_STATES = (*PROGRESS_STATES, "approved", "rejected", "canceled")


@dataclass(frozen=True)
class Outcome:
    """What a business target may use about an approval (one round of a business key):
    the state syncd gave it, DingTalk's words, who decided, the last remark, the comments,
    and while it runs, where it waits and for whom. ``final`` outcomes are written once
    per round; the others (``submitted``, ``running``, ``invalid``, ``dead``: the round's
    *progress*) each time the round changes, ``seq`` growing with every change."""

    approval_id: int
    kind: str
    business_key: str
    round: int
    status: str
    dingtalk_status: str | None
    result: str | None
    instance_id: str | None
    business_id: str | None
    finished_at: datetime | None
    remark: str | None
    approver: str | None
    error: str | None = None
    final: bool = True
    seq: int = 0
    url: str | None = None
    pc_url: str | None = None
    mobile_url: str | None = None
    current_node: str | None = None
    pending_approvers: tuple[str, ...] = ()
    reason: str | None = None
    state_changed_at: datetime | None = None
    comments: tuple[dict[str, Any], ...] = ()  # {user, at, text}: see domain_comments
    last_comment: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Every field, times in ISO 8601, tuples as lists (what a procedure receives)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for name in ("finished_at", "state_changed_at"):
            at = data[name]
            data[name] = at.isoformat() if at else None
        data["pending_approvers"] = list(self.pending_approvers)
        data["comments"] = list(self.comments)
        return data

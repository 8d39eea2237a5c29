"""The stores of the pipeline's stages: one port per stage, in domain verbs.

Each is implemented by a ``Postgres<Port>`` in ``syncd.db`` (``ApplyStore`` by
``PostgresApplyStore``, ...). Every method is one transaction, committed before it
returns; a database failure raises ``StoreError`` and changes nothing. State changes are
guarded transitions: a lost lease, a duplicate or a late event changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from syncd.domain import (
    ApprovalRef,
    ApprovalState,
    CallRecord,
    CancelItem,
    Final,
    FinishResult,
    InboxItem,
    IngestDecision,
    IngestResult,
    Intent,
    LatestRound,
    OutboxRow,
    Outcome,
    PollItem,
    SubmitItem,
    TaskRecord,
)
from syncd.domain_comments import CommentItem
from syncd.ports.target import ProgressRow, ProgressWrite


class IngestStore(Protocol):
    """Outbox rows in, approval rounds out (``PostgresIngestStore``)."""

    async def ingest(
        self,
        limit: int,
        now: datetime,
        decide: Callable[[OutboxRow, LatestRound | None], Sequence[IngestDecision]],
    ) -> IngestResult:
        """Claim up to ``limit`` rows, apply the decisions, mark them consumed: one transaction.

        When the database refuses the batch because of a row's data, the batch is done
        again row by row, and each row it still refuses is quarantined (consumed, with the
        error) instead; ``decide`` may then be called again for the same rows. Other
        database failures raise ``StoreError`` and leave every row to the next attempt.
        """
        ...


class SubmitStore(Protocol):
    """Claims and outcomes of creates and reconciliations (``PostgresSubmitStore``)."""

    async def claim_submits(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]: ...

    async def record_created(
        self,
        approval_id: int,
        *,
        instance_id: str,
        process_code: str,
        form_values: Any,
        now: datetime,
        next_poll_at: datetime,
        created_at: datetime | None = None,
        calls: Sequence[CallRecord] = (),
    ) -> bool: ...

    async def record_failed(
        self,
        approval_id: int,
        *,
        to_state: ApprovalState,
        now: datetime,
        next_attempt_at: datetime,
        error_code: str,
        error_message: str,
        refund: bool = False,
        process_code: str | None = None,
        form_values: Any = None,
        calls: Sequence[CallRecord] = (),
        owner: str | None = None,
    ) -> bool: ...

    async def record_intents(
        self, intents: Sequence[Intent], owner: str, now: datetime
    ) -> set[int]: ...

    async def expire_leases(self, now: datetime) -> list[int]: ...

    async def claim_unknowns(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[SubmitItem]: ...

    async def known_instances(self, instance_ids: Sequence[str]) -> set[str]: ...

    async def record_calls(
        self, approval_id: int, now: datetime, calls: Sequence[CallRecord]
    ) -> None: ...


class ControlStore(Protocol):
    """Cluster-wide switches and monthly usage (``PostgresControlStore``)."""

    async def get(self, name: str, now: datetime) -> dict[str, Any] | None: ...

    async def set(self, name: str, reason: str, until: datetime | None, now: datetime) -> None: ...

    async def clear(self, name: str) -> None: ...

    async def add_usage(self, now: datetime, purpose: str, calls: int = 1) -> None: ...

    async def usage(self, now: datetime) -> dict[str, int]: ...


class ApplyStore(Protocol):
    """Apply's store (``PostgresApplyStore``): claimed events, the approvals they belong
    to, progress without a decision, and the final word with its write-back."""

    async def claim_inbox(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[InboxItem]:
        """Lease up to ``limit`` unprocessed events due by ``now``, until ``lease_until``
        (a replica that dies keeps them that long); in id order."""
        ...

    async def defer_inbox(self, inbox_id: int, next_attempt_at: datetime, error: str) -> None:
        """Give a claimed event back, to be tried again at ``next_attempt_at``."""
        ...

    async def drop_inbox(self, inbox_ids: Sequence[int], now: datetime, note: str | None) -> None:
        """Mark events processed without applying them, with ``note`` saying why."""
        ...

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        """The approvals these instances belong to, by instance id (unknown ones left out)."""
        ...

    async def touch(
        self,
        approval: ApprovalRef,
        now: datetime,
        *,
        next_poll_at: datetime,
        tasks: Sequence[TaskRecord] = (),
        inbox_ids: Sequence[int] = (),
        calls: Sequence[CallRecord] = (),
        url: str | None = None,
        progress_due: datetime | None = None,
    ) -> None:
        """The instance is alive: record its tasks, its link (``url``, from an instance
        event) and calls, push its next poll to ``next_poll_at``, mark the events
        processed. What it told is a change its business row may show: the round's
        progress is due at ``progress_due`` (default ``now``) unless already due."""
        ...

    async def touch_many(
        self,
        touches: Sequence[tuple[ApprovalRef, Sequence[TaskRecord]]],
        now: datetime,
        *,
        next_poll_at: datetime,
        inbox_ids: Sequence[int] = (),
        urls: Mapping[int, str] | None = None,
        progress_due: datetime | None = None,
        finishing: Collection[int] = (),
    ) -> None:
        """Several :meth:`touch` without calls, in one transaction (``urls``: the links
        told, by approval id). The approvals in ``finishing`` are about to be finished
        (their final events came in the same batch): only their tasks are recorded and
        their events marked, their rows are left to the finish."""
        ...

    async def finish(
        self,
        approval: ApprovalRef,
        final: Final,
        now: datetime,
        *,
        tasks: Sequence[TaskRecord] = (),
        inbox_ids: Sequence[int] = (),
        calls: Sequence[CallRecord] = (),
        retry_at: datetime | None = None,
    ) -> FinishResult:
        """Make the approval final and write its outcome to its kind's
        :class:`~syncd.ports.target.BusinessTarget`, in one transaction, exactly once.

        Only a state that may move there moves (a duplicate or late event: ``moved`` is
        False, nothing written). When the target refuses the write, the approval still
        becomes final and the events are marked processed, but the outcome waits in
        ``syncd.unwritten`` with the error, to be retried from ``retry_at`` (default
        ``now``): ``written`` is False and ``error`` says why.
        """
        ...

    async def finish_many(
        self,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        *,
        inbox_ids: Sequence[int] = (),
    ) -> dict[int, FinishResult] | None:
        """Several :meth:`finish` (one final per approval, without tasks or calls) in one
        transaction; what moved, by approval id. ``None`` when a write was refused: then
        nothing was done, and each should be finished on its own."""
        ...


class WriteBackStore(Protocol):
    """The write-back retry's store (``PostgresWriteBackStore``): outcomes of final
    approvals that their business target refused, written again."""

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[ApprovalRef]:
        """Lease up to ``limit`` final approvals whose write-back is due again (fewer than
        ``max_attempts`` so far), until ``lease_until``."""
        ...

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None:
        """Write one final approval's outcome to its business target, unless it was
        written meanwhile (with ``force``, an operator's replay: again). Returns None, or
        the target's error, recorded with the approval to be retried from ``retry_at``."""
        ...

    async def due_progress(self, kinds: Sequence[str], limit: int, now: datetime) -> list[int]:
        """Up to ``limit`` unfinished rounds of ``kinds`` whose latest state is not in
        their business row yet and is due by ``now`` (first due first); not claimed: a
        replica that takes one in :meth:`write_progress` keeps the others out."""
        ...

    async def write_progress(
        self,
        approval_id: int,
        now: datetime,
        decide: Callable[[ProgressRow], Outcome | None],
        *,
        retry_at: Callable[[int], datetime],
        max_attempts: int,
    ) -> ProgressWrite | None:
        """Write a round's latest state, in one transaction: ``None`` when it is not due any
        more (written, finished, or its final outcome is being written right now).
        Otherwise ``decide`` says what its business row shows (``None``: nothing, e.g. a
        later round took the row over); that is written through its kind's target and the
        round marked written up to the version read. A refusal leaves nothing of the
        write: it is recorded with the round (``progress_error``, a history note) and
        tried again at ``retry_at(n)`` after the n-th refusal in a row, or after
        ``max_attempts`` given up until the round changes again."""
        ...


class PollStore(Protocol):
    """The poller's store (``PostgresPollStore``): running instances quiet for too long."""

    async def claim_polls(self, limit: int, now: datetime, lease_until: datetime) -> list[PollItem]:
        """Lease up to ``limit`` running approvals whose next poll is due, until
        ``lease_until``."""
        ...

    async def set_next_poll(
        self,
        approval: ApprovalRef,
        at: datetime,
        calls: Sequence[CallRecord],
        now: datetime,
        tasks: Sequence[TaskRecord] = (),
    ) -> None:
        """Poll the approval again at ``at``; record the calls the poll spent and, from an
        instance still running, its tasks (a change its business row may show)."""
        ...


class CancelStore(Protocol):
    """The cancel stage's store (``PostgresCancelStore``): requested cancels."""

    async def pending_cancels(self, limit: int) -> list[int]:
        """Approvals whose cancel was requested before they were submitted (no instance
        to revoke): up to ``limit`` ids."""
        ...

    async def approval_by_id(self, approval_id: int) -> ApprovalRef | None:
        """One approval, or None if there is no such id."""
        ...

    async def claim_cancels(
        self, limit: int, now: datetime, created_before: datetime, owner: str, lease_until: datetime
    ) -> list[CancelItem]:
        """Lease, for ``owner`` until ``lease_until``, up to ``limit`` running approvals
        whose cancel was requested and whose instance was created before
        ``created_before`` (DingTalk refuses revoking younger ones)."""
        ...

    async def release_cancel(
        self,
        approval_id: int,
        now: datetime,
        retry_at: datetime,
        error_code: str,
        error_message: str,
        calls: Sequence[CallRecord] = (),
    ) -> None:
        """The revoke failed: try again at ``retry_at``; record the error and the calls."""
        ...


class ReconcileLookup(Protocol):
    """syncd's approvals as ``syncd reconcile`` compares them with DingTalk's instances
    (``syncd.db.admin_store.AdminStore``)."""

    async def approvals_by_instances(self, instance_ids: Sequence[str]) -> dict[str, ApprovalRef]:
        """The approvals owning any of these instances, by instance id."""
        ...

    async def running_since(
        self, kind: str, process_code: str, since: datetime
    ) -> list[ApprovalRef]:
        """A kind's running approvals of a template whose instance was created since ``since``."""
        ...

    async def unknown_rounds(self, kind: str) -> list[SubmitItem]:
        """A kind's approvals whose create outcome is unknown and that have no instance."""
        ...

    async def round_of(self, kind: str, business_key: str, round_: int) -> ApprovalRef | None:
        """One round of a business key, if this database has it."""
        ...


class CommentStore(Protocol):
    """The comment stage's view of ``syncd.comment`` (outbox comments to send)."""

    async def drop_finished(self, now: datetime) -> int:
        """Drop waiting comments whose round finished without them (a note each)."""

    async def claim_comments(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[CommentItem]:
        """The oldest waiting comment of running approvals, leased and marked in doubt."""

    async def sent_count(self, approval_id: int, user_id: str, text: str) -> int:
        """How many of the approval's comments syncd knows it sent as ``user_id``."""

    async def finish_comment(
        self,
        item: CommentItem,
        now: datetime,
        owner: str,
        *,
        sent_as: str | None,
        error: tuple[str, str] | None,
        calls: Sequence[CallRecord],
        note: str,
    ) -> None:
        """Sent (``error`` None) or failed for good (``error``: code, message)."""

    async def release_comment(
        self,
        item: CommentItem,
        now: datetime,
        owner: str,
        retry_at: datetime,
        *,
        in_doubt: bool,
        error: tuple[str, str],
        calls: Sequence[CallRecord],
    ) -> None:
        """Not done: try again at ``retry_at``; ``in_doubt``: DingTalk may have added it."""

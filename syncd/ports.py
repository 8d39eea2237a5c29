"""Protocols at the seams between the pipeline and its adapters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

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
    PollItem,
    SubmitItem,
    TaskRecord,
)

if TYPE_CHECKING:
    from syncd.dingtalk.events import InboundEvent
    from syncd.dingtalk.models import (
        CreateInstanceRequest,
        FormSchema,
        InstanceId,
        ProcessInstance,
    )


class Clock(Protocol):
    """Wall-clock and monotonic time, injectable so tests can move time by hand."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class ApprovalClient(Protocol):
    """DingTalk's approval API, in domain types (implemented by HttpxApprovalClient).

    Every method raises a :class:`~syncd.errors.DingTalkError` branch on failure:
    ``DingTalkTransient`` (retry later; ``DingTalkThrottled`` says when),
    ``DingTalkQuotaExhausted`` (pause), ``DingTalkAuthError`` (stop, alert),
    ``DingTalkRejected`` (park with DingTalk's code and message). ``create_instance``
    alone may raise ``DingTalkOutcomeUnknown``; it is never retried by the client.
    """

    async def create_instance(
        self, request: CreateInstanceRequest, *, send_before: datetime | None = None
    ) -> InstanceId:
        """Start an approval instance and return its id.

        With ``send_before``, a create still waiting for its pacing slot at that time is
        not sent at all (``DingTalkNotSent``): the caller's lease would expire while it
        was in flight, and another replica could create the same instance again.
        """
        ...

    async def get_instance(self, instance_id: str) -> ProcessInstance:
        """Read one instance: the authoritative status, result, tasks and records."""
        ...

    async def list_instance_ids(
        self,
        process_code: str,
        start: datetime,
        end: datetime | None = None,
        *,
        user_ids: Sequence[str] = (),
        statuses: Sequence[str] = (),
    ) -> list[InstanceId]:
        """Ids of the instances started in ``[start, end]`` (default end: now), all pages."""
        ...

    async def terminate_instance(
        self, instance_id: str, *, operating_user_id: str | None = None, remark: str | None = None
    ) -> None:
        """Revoke a running instance (as the system unless an operating user is given)."""
        ...

    async def add_comment(self, instance_id: str, text: str, comment_user_id: str) -> None:
        """Add a comment to an instance."""
        ...

    async def get_form_schema(self, process_code: str) -> FormSchema:
        """The form schema of a template."""
        ...


class InboxWriter(Protocol):
    """Durable storage of received DingTalk events (``syncd.inbox``)."""

    async def put(self, event: InboundEvent) -> bool:
        """Store ``event`` once; True if new, False if its dedup key was already there.

        Returns only after the row is committed, so the caller may then acknowledge the
        event to DingTalk. Raises ``StoreError`` when the database fails.
        """
        ...

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        """Store a burst of events in one transaction; for each, True if it was new.

        Of equal dedup keys in one burst only the first counts as new. All or nothing:
        raises ``StoreError`` when the database fails, and then none is stored.
        """
        ...


#: What became of a signed callback push: its event was stored (or it had none), its event
#: was already in the inbox, or its signature had been claimed before (a replay).
SignedPut = Literal["new", "duplicate", "replay"]


class CallbackInbox(Protocol):
    """The inbox as the HTTP callback endpoint uses it: every push accepted once."""

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        """Claim ``signature`` and store ``event`` (``None``: a URL check, nothing to
        store), in one transaction, shared by every replica.

        ``"replay"`` if the signature was claimed before and has not been forgotten: then
        nothing is stored. A claim is kept at least until ``expires_at``. Returns only
        after the commit; raises ``StoreError`` when the database fails, and then neither
        the claim nor the event is stored.
        """
        ...

    async def forget_signatures(self, now: datetime) -> int:
        """Delete the claims that expired before ``now``; how many."""
        ...


class IngestStore(Protocol):
    """Outbox rows in, approval rounds out (``syncd.db.ingest_store.IngestStore``)."""

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
    """Claims and outcomes of creates and reconciliations (``syncd.db.store.SubmitStore``)."""

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
    """Cluster-wide switches and monthly usage (``syncd.db.store.ControlStore``)."""

    async def get(self, name: str, now: datetime) -> dict[str, Any] | None: ...

    async def set(self, name: str, reason: str, until: datetime | None, now: datetime) -> None: ...

    async def clear(self, name: str) -> None: ...

    async def add_usage(self, now: datetime, purpose: str, calls: int = 1) -> None: ...

    async def usage(self, now: datetime) -> dict[str, int]: ...


class TrackStore(Protocol):
    """Events, polls, cancels and write-backs (``syncd.db.track_store.TrackStore``)."""

    async def claim_inbox(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[InboxItem]: ...

    async def defer_inbox(self, inbox_id: int, next_attempt_at: datetime, error: str) -> None: ...

    async def drop_inbox(
        self, inbox_ids: Sequence[int], now: datetime, note: str | None
    ) -> None: ...

    async def approval_by_instance(self, instance_id: str) -> ApprovalRef | None: ...

    async def approvals_by_instances(
        self, instance_ids: Sequence[str]
    ) -> dict[str, ApprovalRef]: ...

    async def approval_by_id(self, approval_id: int) -> ApprovalRef | None: ...

    async def touch(
        self,
        approval: ApprovalRef,
        now: datetime,
        *,
        next_poll_at: datetime,
        tasks: Sequence[TaskRecord] = (),
        inbox_ids: Sequence[int] = (),
        calls: Sequence[CallRecord] = (),
    ) -> None: ...

    async def touch_many(
        self,
        touches: Sequence[tuple[ApprovalRef, Sequence[TaskRecord]]],
        now: datetime,
        *,
        next_poll_at: datetime,
        inbox_ids: Sequence[int] = (),
    ) -> None: ...

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
    ) -> FinishResult: ...

    async def finish_many(
        self,
        finals: Sequence[tuple[ApprovalRef, Final]],
        now: datetime,
        *,
        inbox_ids: Sequence[int] = (),
    ) -> dict[int, FinishResult] | None: ...

    async def claim_unwritten(
        self, limit: int, now: datetime, lease_until: datetime, max_attempts: int
    ) -> list[int]: ...

    async def write_back(
        self, approval_id: int, now: datetime, retry_at: datetime, *, force: bool = False
    ) -> str | None: ...

    async def claim_polls(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[PollItem]: ...

    async def set_next_poll(
        self, approval_id: int, at: datetime, calls: Sequence[CallRecord], now: datetime
    ) -> None: ...

    async def claim_cancels(
        self, limit: int, now: datetime, created_before: datetime, owner: str, lease_until: datetime
    ) -> list[CancelItem]: ...

    async def pending_cancels(self, limit: int) -> list[int]: ...

    async def release_cancel(
        self,
        approval_id: int,
        now: datetime,
        retry_at: datetime,
        error_code: str,
        error_message: str,
        calls: Sequence[CallRecord] = (),
    ) -> None: ...


class Observer(Protocol):
    """Told what the pipeline does, for metrics (``syncd.metrics`` implements it).

    Every label value passed here comes from a small closed set: stage names, kinds from
    the configuration, states, channels, error classes and syncd's own error codes.
    """

    def stage_run(self, stage: str, handled: int, seconds: float) -> None: ...

    def stage_failed(self, stage: str, error_class: str) -> None: ...

    def approval_created(self, kind: str, seconds_since_capture: float) -> None: ...

    def approval_parked(self, kind: str, state: str, reason: str) -> None: ...

    def outbox_quarantined(self, kind: str, sqlstate: str) -> None: ...

    def approval_finished(
        self,
        kind: str,
        state: str,
        channel: str,
        *,
        written: bool,
        seconds_since_decision: float | None,
        calls_spent: int | None,
    ) -> None: ...

    def event_stored(self, channel: str, new: bool) -> None: ...

    def callback_rejected(self, reason: str) -> None:
        """An HTTP callback push was refused (``reason`` from the endpoint's closed set)."""
        ...


class NullObserver:
    """An observer that ignores everything (the default outside the daemon)."""

    def stage_run(self, stage: str, handled: int, seconds: float) -> None:
        pass

    def stage_failed(self, stage: str, error_class: str) -> None:
        pass

    def approval_created(self, kind: str, seconds_since_capture: float) -> None:
        pass

    def approval_parked(self, kind: str, state: str, reason: str) -> None:
        pass

    def outbox_quarantined(self, kind: str, sqlstate: str) -> None:
        pass

    def approval_finished(
        self,
        kind: str,
        state: str,
        channel: str,
        *,
        written: bool,
        seconds_since_decision: float | None,
        calls_spent: int | None,
    ) -> None:
        pass

    def event_stored(self, channel: str, new: bool) -> None:
        pass

    def callback_rejected(self, reason: str) -> None:
        pass


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

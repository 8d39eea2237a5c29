"""Protocols at the seams between the pipeline and its adapters.

Here: time, DingTalk, the event inbox and the observer. The stages' stores are in
:mod:`syncd.ports.stores`, the write-back seam in :mod:`syncd.ports.target`; both are
importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from syncd.ports.stores import (
    ApplyStore,
    CancelStore,
    CommentStore,
    ControlStore,
    IngestStore,
    PollStore,
    ReconcileLookup,
    SubmitStore,
    WriteBackStore,
)
from syncd.ports.target import BusinessTarget, ProgressRow, ProgressWrite

__all__ = [
    "ApplyStore",
    "ApprovalClient",
    "BusinessTarget",
    "CallbackInbox",
    "CancelStore",
    "Clock",
    "CommentStore",
    "ControlStore",
    "InboxWriter",
    "IngestStore",
    "NullObserver",
    "Observer",
    "PollStore",
    "ProgressRow",
    "ProgressWrite",
    "ReconcileLookup",
    "SignedPut",
    "SubmitStore",
    "WriteBackStore",
]

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

    async def add_comment(
        self,
        instance_id: str,
        text: str,
        comment_user_id: str,
        attachments: Sequence[Mapping[str, str]] = (),
    ) -> None:
        """Add a comment to an instance, with files (DDAttachment items, all strings)."""
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
        seconds_to_decision: float | None = None,
    ) -> None:
        """An approval became final. ``seconds_since_decision``: from DingTalk's decision
        to now (the write-back's latency); ``seconds_to_decision``: from the instance's
        creation to the decision (None without an instance)."""
        ...

    def progress_written(self, kind: str, *, written: bool) -> None:
        """An unfinished round's state was written to its business row, or refused."""
        ...

    def writeback_retried(self, kind: str, *, written: bool) -> None:
        """A finished approval's write-back was tried again: written, or refused."""
        ...

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
        seconds_to_decision: float | None = None,
    ) -> None:
        pass

    def progress_written(self, kind: str, *, written: bool) -> None:
        pass

    def writeback_retried(self, kind: str, *, written: bool) -> None:
        pass

    def event_stored(self, channel: str, new: bool) -> None:
        pass

    def callback_rejected(self, reason: str) -> None:
        pass


# --- DingTalk calls (the client tells how each ended) -------------------------------------

if TYPE_CHECKING:
    from syncd.dingtalk.endpoints import Endpoint, Outcome


class CallObserver(Protocol):
    """Told how each HTTP exchange with DingTalk ended (``syncd.metrics`` implements it).

    One report per request sent, by its declared endpoint: token fetches and the resend
    after a token refusal are exchanges of their own, and so is a request that got no
    answer. ``seconds`` runs from sending to the answer read; ``None`` when the request
    itself was never sent (its token fetch failed first).
    """

    def call_ended(self, endpoint: Endpoint, outcome: Outcome, seconds: float | None) -> None: ...

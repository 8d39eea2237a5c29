"""Protocols at the seams between the pipeline and its adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

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

    async def create_instance(self, request: CreateInstanceRequest) -> InstanceId:
        """Start an approval instance and return its id."""
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

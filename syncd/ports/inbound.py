"""The inbound kinds' ports: the import queue and the business row, the instance listing.

Implemented on PostgreSQL by ``syncd.db.inbound_store.PostgresInboundStore`` and over
httpx by ``HttpxApprovalClient.list_page``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.domain import ApprovalRef, CallRecord
from syncd.errors import SyncdError


@dataclass(frozen=True)
class ImportItem:
    """An instance of an inbound kind waiting to be imported (``syncd.inbound_import``)."""

    instance_id: str
    kind: str
    process_code: str
    source: str
    attempts: int


@dataclass(frozen=True)
class Imported:
    """What an import writes: the instance as a GET read it."""

    kind: str
    instance_id: str
    process_code: str
    business_id: str | None
    title: str
    originator: str | None
    originator_dept_id: str | None
    created_at: datetime | None
    #: Form component label → value as DingTalk has it (a label twice: the first).
    form: dict[str, str] = field(default_factory=dict)


class ImportRefused(SyncdError):
    """The business row cannot be written (a value that does not fit its column, no such
    table): the message names the instance, the component and the column."""

    def __init__(self, message: str, reason: str = "bad_form_value") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class InboundStore(Protocol):
    async def queue(
        self, kind: str, process_code: str, instance_ids: Sequence[str], source: str, now: datetime
    ) -> int:
        """Queue the instances syncd neither knows nor has queued; how many were new."""
        ...

    async def claim(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[ImportItem]:
        """Due imports, leased to ``owner``."""
        ...

    async def creates_in_doubt(self, process_code: str) -> bool:
        """Whether a create for ``process_code`` is in doubt (``submitting``, ``unknown``)."""
        ...

    async def release(self, item: ImportItem, owner: str, retry_at: datetime, error: str) -> None:
        """Try ``item`` again at ``retry_at``, saying why."""
        ...

    async def drop(self, item: ImportItem) -> None:
        """``item`` off the queue."""
        ...

    async def import_instance(
        self, item: ImportItem, instance: Imported, now: datetime, calls: Sequence[CallRecord]
    ) -> ApprovalRef | None:
        """In one transaction: the business row, syncd's round (``running``), its history
        and the calls, the item off the queue; ``None`` (and nothing written) when syncd
        knows the instance already. Raises :class:`ImportRefused` (nothing written)."""
        ...

    async def park(
        self,
        item: ImportItem,
        instance: Imported,
        now: datetime,
        calls: Sequence[CallRecord],
        error: ImportRefused,
    ) -> None:
        """Record the instance as an ``invalid`` round with ``error``, the item off the queue."""
        ...


@dataclass(frozen=True)
class ListPage:
    """One page of DingTalk's instance-id listing (contract §5.1)."""

    ids: list[str]
    #: The next page's token, or ``None``: the window is done.
    next_token: int | None


class InstanceLister(Protocol):
    async def list_page(
        self, process_code: str, start_ms: int, end_ms: int, token: int
    ) -> ListPage:
        """One page of the ids of instances created in ``[start_ms, end_ms]``."""
        ...


class BackfillCursor(Protocol):
    """Where a kind's backfill is (``syncd.inbound_backfill``)."""

    async def take(
        self, kind: str, process_code: str, since: datetime, until: datetime, now: datetime,
        owner: str, lease_until: datetime,
    ) -> tuple[datetime, int, int, int, datetime] | None:  # fmt: skip
        """Take the backfill (resuming one of the same ``since``): its window start, next
        token, ids listed and queued so far, and its end; ``None`` when another holds it."""
        ...

    async def advance(
        self, kind: str, process_code: str, owner: str, ids: Sequence[str],
        cursor: tuple[datetime, int], *, done: bool, now: datetime, lease_until: datetime,
    ) -> int:  # fmt: skip
        """Queue one page's ``ids`` and move the cursor, in one transaction; how many ids
        were new. Raises ``SyncdError`` when the lease was lost."""
        ...

    async def release(self, kind: str, owner: str, now: datetime) -> None:
        """Give up the lease (the next backfill resumes)."""
        ...

"""The operator's seam: finding the approvals a command names, and the guarded moves an
operator makes on them (``syncd retry``, ``dismiss``, ``replay``, ``cancel``).

Implemented by :class:`syncd.db.admin_store.AdminStore`, used by
:class:`syncd.pipeline.repair.Repair`. Like the stages' stores, every method is one
transaction, and every change names the states it may move from, so an approval the
daemon moved meanwhile is refused, not overwritten; each change is written to the
approval's history with the operator as actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from syncd.domain import ApprovalState


@dataclass(frozen=True)
class ApprovalBrief:
    """Where one approval round stands, as an operator's command reports it."""

    id: int
    kind: str
    business_key: str
    round: int
    state: ApprovalState
    instance_id: str | None = None
    written_back_at: datetime | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None
    #: A newer round of the same business key exists.
    superseded: bool = False

    @property
    def name(self) -> str:
        return f"approval {self.id} ({self.kind} {self.business_key} round {self.round})"


@dataclass(frozen=True)
class CancelRequest:
    """An operator's cancel of one approval, and when one was asked for before (if)."""

    approval: ApprovalBrief
    requested_before: datetime | None


@dataclass(frozen=True)
class Moved:
    """The approvals an operator's move changed (each as it was before), and the ids of
    those it refused because they were not in a state it moves from."""

    moved: list[ApprovalBrief]
    refused: list[int]


class OperatorStore(Protocol):
    async def round_id(self, kind: str, business_key: str, round_: int | None) -> int | None:
        """The approval of one round of a business key (None: the latest round); None
        when the key has no such round."""
        ...

    async def active_round_id(self, kind: str, business_key: str) -> int | None:
        """The round of a business key still on its way (pending, submitting, running,
        unknown), if any."""
        ...

    async def briefs(self, approval_ids: Sequence[int]) -> dict[int, ApprovalBrief]:
        """The approvals that exist among ``approval_ids``."""
        ...

    async def parked_ids(
        self, kind: str, states: Sequence[ApprovalState], *, superseded: bool = False
    ) -> list[int]:
        """Parked approvals of ``kind`` in ``states``, oldest first; with ``superseded``
        only those a newer round of their key replaced."""
        ...

    async def unwritten_ids(self, kind: str) -> list[int]:
        """Finished approvals of ``kind`` whose outcome is not written back yet."""
        ...

    async def retry(self, now: datetime, approval_ids: Sequence[int]) -> Moved:
        """Parked approvals back to pending (attempts reset, error cleared, due at
        ``now``); never an older round of a key that has a newer one, nor one whose key
        was too long to store."""
        ...

    async def dismiss(self, now: datetime, approval_ids: Sequence[int], reason: str) -> Moved:
        """Parked approvals closed for good (``dismissed``), ``reason`` in their history."""
        ...

    async def hold_writeback(
        self, approval_id: int, now: datetime, hold_until: datetime, *, force: bool
    ) -> bool:
        """Keep the daemon's write-back retry off a finished approval until
        ``hold_until`` (an operator writes it now); False, changing nothing, unless it is
        finished and (without ``force``) not written back yet."""
        ...

    async def request_cancel(self, approval_id: int, now: datetime) -> CancelRequest | None:
        """Ask for an approval still on its way to be canceled; None if it is not."""
        ...

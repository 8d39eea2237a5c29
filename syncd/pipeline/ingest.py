"""Ingest: outbox rows become approval rounds; bad rows are parked, never blocking.

Each row is decided by a pure function of the row, the kind's configuration and the
business key's latest round. The store claims the rows, applies the decisions and marks
the rows consumed in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from syncd.domain import (
    ACTIVE,
    ApprovalState,
    CancelRound,
    IngestDecision,
    LatestRound,
    NewRound,
    NoteOnRound,
    OutboxRow,
)
from syncd.pipeline.mapping import MappingError, resolve
from syncd.ports import Clock, IngestStore, NullObserver, Observer
from syncd.settings_kinds import KindSettings

logger = logging.getLogger(__name__)


def _invalid(code: str, message: str) -> list[IngestDecision]:
    return [NewRound(ApprovalState.INVALID, error_code=code, error_message=message)]


def decide(
    row: OutboxRow, latest: LatestRound | None, kinds: Mapping[str, KindSettings]
) -> list[IngestDecision]:
    """What one outbox row does, given the latest round of its business key."""
    kind = kinds.get(row.kind)
    if kind is None:
        known = ", ".join(sorted(kinds)) or "none"
        return _invalid(
            "unknown_kind",
            f"outbox row {row.id}: kind {row.kind!r} is not configured (configured kinds: "
            f"{known}); add [kinds.{row.kind}] to the config or fix the row",
        )
    if not row.business_key.strip():
        return _invalid("empty_key", f"outbox row {row.id}: business_key is empty")
    active = latest is not None and latest.state in ACTIVE
    if row.action == "cancel":
        return _decide_cancel(row, latest, active)
    if row.action != "submit":
        return _invalid(
            "unknown_action",
            f"outbox row {row.id}: action {row.action!r} is not 'submit' or 'cancel'",
        )
    if active and latest is not None:
        if kind.on_resubmit == "reject":
            return _invalid(
                "still_running",
                f"outbox row {row.id}: approval {latest.id} for {row.kind} "
                f"{row.business_key!r} is still {latest.state.value}; wait for it to finish, "
                "cancel it, or set on_resubmit = 'supersede'",
            )
        decisions: list[IngestDecision] = [CancelRound(latest.id)]
        return decisions + _submit(row, kind)
    return _submit(row, kind)


def _submit(row: OutboxRow, kind: KindSettings) -> list[IngestDecision]:
    columns = {"originator": row.originator, "business_key": row.business_key, "kind": row.kind}
    try:
        resolved = resolve(kind, row.payload, columns)
    except MappingError as exc:
        return _invalid("bad_payload", f"outbox row {row.id}: {exc.message}")
    return [NewRound(ApprovalState.PENDING, resolved.originator, resolved.dept_id)]


def _decide_cancel(
    row: OutboxRow, latest: LatestRound | None, active: bool
) -> list[IngestDecision]:
    if latest is None:
        return _invalid(
            "nothing_to_cancel",
            f"outbox row {row.id}: cancel for {row.kind} {row.business_key!r}, which was "
            "never submitted",
        )
    if not active:
        return [
            NoteOnRound(
                latest.id,
                f"outbox row {row.id}: cancel ignored, approval is already {latest.state.value}",
            )
        ]
    return [CancelRound(latest.id)]


class Ingest:
    """Claims outbox rows in batches (one replica at a time) and records the decisions."""

    def __init__(
        self,
        store: IngestStore,
        kinds: Mapping[str, KindSettings],
        clock: Clock,
        *,
        batch_size: int = 50,
        observer: Observer | None = None,
    ) -> None:
        self.observer = observer or NullObserver()
        self.store = store
        self.kinds = kinds
        self.clock = clock
        self.batch_size = batch_size

    def _decide(self, row: OutboxRow, latest: LatestRound | None) -> Sequence[IngestDecision]:
        decisions = decide(row, latest, self.kinds)
        for decision in decisions:
            if isinstance(decision, NewRound) and decision.state is ApprovalState.INVALID:
                kind = row.kind if row.kind in self.kinds else "(unknown)"
                self.observer.approval_parked(kind, "invalid", decision.error_code or "invalid")
                logger.warning(
                    "outbox row parked",
                    extra={
                        "action": "ingest_invalid",
                        "outbox_id": row.id,
                        "kind": row.kind,
                        "error_code": decision.error_code,
                        "error": decision.error_message,
                    },
                )
        return decisions

    async def run_once(self) -> int:
        handled: int = await self.store.ingest(self.batch_size, self.clock.now(), self._decide)
        return handled

"""Pure domain types: the approval state machine. Imports nothing of syncd's."""

from __future__ import annotations

from enum import StrEnum


class ApprovalState(StrEnum):
    """States of ``syncd.approval.state`` (ARCHITECTURE §4)."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    RUNNING = "running"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELED = "canceled"
    INVALID = "invalid"
    DEAD = "dead"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """DingTalk decided: the outcome is final and is written back."""
        return self in FINISHED

    @property
    def parked(self) -> bool:
        """Needs a person: fix the input or the cause, then ``syncd retry``."""
        return self in PARKED


FINISHED = frozenset({ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.CANCELED})
PARKED = frozenset({ApprovalState.INVALID, ApprovalState.DEAD})

#: Every allowed move. Finished states never move again; parked ones only by an operator.
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
    ApprovalState.INVALID: frozenset({ApprovalState.PENDING}),
    ApprovalState.DEAD: frozenset({ApprovalState.PENDING}),
    ApprovalState.APPROVED: frozenset(),
    ApprovalState.REJECTED: frozenset(),
    ApprovalState.CANCELED: frozenset(),
}


def can_move(source: ApprovalState, target: ApprovalState) -> bool:
    return target in TRANSITIONS[source]

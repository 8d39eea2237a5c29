"""The write-back seam: where an approval's outcome and progress go in the application."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from syncd.domain import ApprovalState, Outcome

#: What a target needs of the transaction that makes approvals final: syncd's own
#: connection for a target in syncd's database; nothing (``object``) for one elsewhere.
Tx = TypeVar("Tx", contravariant=True)


class BusinessTarget(Protocol[Tx]):
    """One kind's outcomes, written into the application's row for the business key.

    syncd calls :meth:`write` from the transaction that makes approvals final (apply,
    poll, cancel, reconcile) and from the write-back retry, never across a DingTalk call;
    and, for a kind that shows progress, :meth:`write_progress` from the write-back stage.
    Implemented for PostgreSQL by ``PostgresTableTarget`` (an UPDATE of mapped columns)
    and ``PostgresProcedureTarget`` (``CALL proc(business_key, outcome)``), both run on
    syncd's connection inside syncd's transaction (``BusinessTarget[Conn]``).

    The contract, proven for every implementation by
    ``tests/integration/writeback/test_target_contract.py`` (final outcomes) and
    ``test_progress_contract.py`` (progress):

    - **Exactly once per approval round.** The outcome of a round is written once, in the
      transaction that records it (``written_back_at``, a history note ``written back to
      <name>``, a ``syncd_result`` notification): duplicate or late events, a poll, a
      second replica or a retry of a written outcome write nothing. Each round is its own
      approval: a new round is written once more, over the business row.
    - **Never an older round over a newer one.** ``write`` is not called for a round whose
      business row a newer round of its key has written (outcome or progress): a late
      word on the older round, a retry of its refused write and a forced replay leave the
      row as the newer round wrote it, and the older approval is marked written with the
      note ``not written back to <name>: round N ... has written the row since``. syncd
      checks it with the key serialised (a transaction-scoped advisory lock on kind and
      key, the one progress takes) against every other write of the key.
    - **A missing business row** (none, or more than one, matches the key): ``write``
      raises :class:`~syncd.errors.WriteBackError` naming the target and the key. The
      approval still becomes final and its events are marked processed, but nothing of
      the write stays: the outcome waits in ``syncd.unwritten`` with
      ``last_error_code = 'writeback_failed'`` and the error, and is written when a retry
      finds the row (first after ``writeback_retry``, then every five minutes, up to
      ``max_attempts``; then ``syncd replay``).
    - **A failed statement or procedure** (a constraint, a trigger, a permission, the
      procedure raising): the same, with the database's message in the error; whatever
      the statement or procedure did before it failed is rolled back. Of several
      outcomes written in one transaction, one refusal holds up no other: syncd's side of
      them all rolls back, each is then finished on its own, and every other outcome is
      written exactly once.
    - **Idempotent on redelivery.** ``write`` is called again for an outcome only after a
      refusal (which left nothing) or with ``again`` (an operator's ``syncd replay
      --force``), which must write even an outcome written before. Writing the same
      outcome twice leaves the business row as writing it once did.

    Progress (``outcome.final`` false: ``submitted``, ``running``, ``invalid``, ``dead``):

    - **Latest state, coalesced.** ``write_progress`` gets the round's state as it is when
      written, ``seq`` its version (it grows with every change of the round); changes
      that came meanwhile are written together, once. It is called with the approval
      locked and its business key serialised against the progress of other rounds, in a
      transaction marked as syncd's write-back.
    - **Never older over newer.** syncd calls it only while the round is unfinished and
      no later round of the key has shown itself, with a ``(round, seq)`` greater than any
      progress of the key written before: a final outcome is never followed by its own
      round's progress, and a round's stale state never lands after a newer one.
    - **Idempotent.** Writing the same progress twice leaves the row as writing it once did.
    - **Refusals stay apart.** A missing row or a failed statement raises
      ``WriteBackError`` and leaves nothing; syncd records it with the approval
      (``progress_error``, ``syncd.progress_unwritten``, a history note) and tries the
      latest state again later, with backoff, up to ``max_attempts`` per change. No other
      approval waits for it, and the final outcome is written as above whatever became
      of the round's progress.
    - **No capture.** Capture triggers on the business table ignore syncd's writes
      (progress and final): the transaction has ``syncd.writing_back = on``, and
      ``syncd.capture_row()`` then writes no outbox row.

    A target whose database cannot join syncd's transaction (MySQL or MariaDB, say) is a
    ``BusinessTarget[object]``: it ignores ``tx`` and keeps the guarantee outbox-style.
    syncd's ``syncd.approval`` row is the outbox: the approval stays unwritten until the
    transaction that marks it written commits. The target writes the business row and a
    ledger row keyed by ``outcome.approval_id`` in one transaction of its own database,
    committed before ``write`` returns; when the ledger already holds that id (and
    ``again`` is false) it writes nothing and returns. Whatever then keeps syncd's side
    from committing (syncd's commit fails, a later outcome of the same batch is refused,
    the business database's reply is lost), the outcome is delivered again and the
    ledger turns the second write into nothing. Its ``write_progress`` keeps, per business
    key, the ``(round, seq)`` it last wrote and writes only a greater one, in the same
    transaction as the row; and marks its own writes so that its capture (if any) skips
    them. It raises ``WriteBackError`` for a refusal and for a business database it
    cannot reach, within its own timeouts (syncd holds the approvals' row locks meanwhile).
    """

    @property
    def name(self) -> str:
        """The table or procedure written (``schema.name``), for the history and errors."""
        ...

    async def write(self, tx: Tx, outcome: Outcome, *, again: bool = False) -> None:
        """Write a final ``outcome`` into its business row, or raise ``WriteBackError``."""
        ...

    async def write_progress(self, tx: Tx, progress: Outcome) -> None:
        """Write an unfinished round's state into its business row, or raise
        ``WriteBackError``."""
        ...


@dataclass(frozen=True)
class ProgressRow:
    """An unfinished round as syncd knows it, read (locked) to write its progress."""

    approval_id: int
    kind: str
    business_key: str
    round: int
    state: ApprovalState
    seq: int
    instance_id: str | None
    changed_at: datetime
    error_message: str | None
    #: The links that open the instance: DingTalk's (its events' ``url``, its tasks'
    #: ``pcUrl`` and ``mobileUrl``), else the aflow patterns built from the corp id.
    url: str | None
    pc_url: str | None
    mobile_url: str | None
    #: Names (else ids) of the nodes with running tasks, and those tasks' approvers.
    current_nodes: tuple[str, ...]
    pending_approvers: tuple[str, ...]
    #: Any task of the instance is known.
    has_tasks: bool
    #: A later round of the same key has taken over its business row.
    superseded: bool
    #: Failed writes of this round's progress so far.
    attempts: int
    #: The approvers' comments so far, oldest first (``{user, at, text}``).
    comments: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ProgressWrite:
    """What writing one round's progress did: ``outcome`` is what was written (``None``:
    nothing to show, or refused with ``error``); ``gave_up`` after ``max_attempts``."""

    row: ProgressRow
    outcome: Outcome | None
    error: str | None = None
    gave_up: bool = False

"""The write-back seam: where a final approval's outcome goes in the application."""

from __future__ import annotations

from typing import Protocol, TypeVar

from syncd.domain import Outcome

#: What a target needs of the transaction that makes approvals final: syncd's own
#: connection for a target in syncd's database; nothing (``object``) for one elsewhere.
Tx = TypeVar("Tx", contravariant=True)


class BusinessTarget(Protocol[Tx]):
    """One kind's outcomes, written into the application's row for the business key.

    syncd calls :meth:`write` from the transaction that makes approvals final (apply,
    poll, cancel, reconcile) and from the write-back retry, never across a DingTalk call.
    Implemented for PostgreSQL by ``PostgresTableTarget`` (an UPDATE of mapped columns)
    and ``PostgresProcedureTarget`` (``CALL proc(business_key, outcome)``), both run on
    syncd's connection inside syncd's transaction (``BusinessTarget[Conn]``).

    The contract, proven for every implementation by
    ``tests/integration/writeback/test_target_contract.py``:

    - **Exactly once per approval round.** The outcome of a round is written once, in the
      transaction that records it (``written_back_at``, a history note ``written back to
      <name>``, a ``syncd_result`` notification): duplicate or late events, a poll, a
      second replica or a retry of a written outcome write nothing. Each round is its own
      approval: a new round is written once more, over the business row.
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

    A target whose database cannot join syncd's transaction (MySQL or MariaDB, say) is a
    ``BusinessTarget[object]``: it ignores ``tx`` and keeps the guarantee outbox-style.
    syncd's ``syncd.approval`` row is the outbox: the approval stays unwritten until the
    transaction that marks it written commits. The target writes the business row and a
    ledger row keyed by ``outcome.approval_id`` in one transaction of its own database,
    committed before ``write`` returns; when the ledger already holds that id (and
    ``again`` is false) it writes nothing and returns. Whatever then keeps syncd's side
    from committing (syncd's commit fails, a later outcome of the same batch is refused,
    the business database's reply is lost), the outcome is delivered again and the
    ledger turns the second write into nothing. It raises ``WriteBackError`` for a
    refusal and for a business database it cannot reach, within its own timeouts (syncd
    holds the approvals' row locks meanwhile).
    """

    @property
    def name(self) -> str:
        """The table or procedure written (``schema.name``), for the history and errors."""
        ...

    async def write(self, tx: Tx, outcome: Outcome, *, again: bool = False) -> None:
        """Write ``outcome`` into its business row, or raise ``WriteBackError``."""
        ...

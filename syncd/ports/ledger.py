"""Ledger retention's seams: a business database's write-back ledger (``syncd_writeback``),
and syncd's own record of which approvals are written back.

:class:`WriteBackLedger` is implemented by :class:`syncd.db.mysql.ledger.MySQLLedger`,
:class:`LedgerApprovals` by :class:`syncd.db.ledger_store.PostgresLedgerApprovals`. Every
method is one transaction; a database failure raises ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class WriteBackLedger(Protocol):
    """One business database's ledger of the final outcomes written there."""

    async def older_than(self, before: datetime, after: int, limit: int) -> list[int]:
        """Approval ids above ``after`` whose ledger rows were written before ``before``,
        in id order, at most ``limit``."""
        ...

    async def delete(self, approval_ids: Sequence[int], before: datetime) -> int:
        """Delete those approvals' ledger rows (still older than ``before``); how many."""
        ...


class LedgerApprovals(Protocol):
    async def unwritten(self, approval_ids: Sequence[int]) -> set[int]:
        """Those of ``approval_ids`` that syncd has not recorded as written back."""
        ...

"""Retention of the business databases' write-back ledgers (``syncd_writeback``).

The ledger gets one row per final outcome written; it is read only by a retry of that
outcome, which happens only while syncd has not recorded the approval as written back
(a crash or a lost reply between the business database's commit and syncd's). So a row
older than its database's ``ledger_retention_days`` is deleted once syncd's state shows
its approval written back, or no longer holds it (syncd's own retention deleted it); a
row whose approval still waits for its write-back is kept, however old. The stale-round
guard (``syncd_writeback_key``, the newest version per business key) is never purged.

A leader duty: one replica at a time, hourly, a batch of ids at a time (each batch one
short transaction on each side), up to :data:`MAX_BATCHES` per database and run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from syncd.ports import Clock
from syncd.ports.ledger import LedgerApprovals, WriteBackLedger

logger = logging.getLogger(__name__)

BATCH = 500
MAX_BATCHES = 20


class LedgerRetention:
    def __init__(
        self,
        ledgers: Mapping[str, WriteBackLedger],
        approvals: LedgerApprovals,
        clock: Clock,
        retention: Mapping[str, timedelta],
        *,
        batch: int = BATCH,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        """``ledgers`` and ``retention`` by business database name."""
        self.ledgers = ledgers
        self.approvals = approvals
        self.clock = clock
        self.retention = retention
        self.batch = batch
        self.max_batches = max_batches

    async def run_once(self) -> int:
        """Purge every ledger; how many rows were deleted."""
        now = self.clock.now()
        deleted = 0
        for name, ledger in self.ledgers.items():
            rows = await self._purge(ledger, now - self.retention[name])
            if rows:
                logger.info(
                    "write-back ledger rows purged",
                    extra={"action": "ledger_purge", "database": name, "rows": rows},
                )
            deleted += rows
        return deleted

    async def _purge(self, ledger: WriteBackLedger, before: datetime) -> int:
        deleted, after = 0, 0
        for _ in range(self.max_batches):
            ids = await ledger.older_than(before, after, self.batch)
            if not ids:
                break
            waiting = await self.approvals.unwritten(ids)
            done = [i for i in ids if i not in waiting]
            if done:
                deleted += await ledger.delete(done, before)
            if len(ids) < self.batch:
                break
            after = ids[-1]
        return deleted

"""The relay: a business database's ``syncd_outbox`` rows into syncd's own outbox.

A business database cannot NOTIFY syncd, so each one is polled: its unconsumed rows are
read in id order, inserted into ``syncd.outbox`` exactly once (by database and source
id, see :class:`syncd.ports.relay.RelayStore`), and then marked consumed there. Ingest
takes them from ``syncd.outbox`` like any row. The order of the three steps is what makes
a crash harmless: after syncd's commit and before the mark, a row is read again and
inserts nothing.

Unconsumed rows are read from the lowest id every time, not from the last id relayed:
an ``AUTO_INCREMENT`` id is taken when a transaction inserts, not when it commits, so a
long transaction's row can appear below rows already relayed. The marked rows leave the
index range ``(consumed_at IS NULL, id)``, which keeps the read short.

The poll interval adapts: ``poll_min`` while rows come (none when a pass read a full
batch), doubling on every empty pass up to ``poll_max``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.ports import Clock
from syncd.ports.relay import NullRelayObserver, OutboxSource, RelayObserver, RelayStore, SourceRow

logger = logging.getLogger(__name__)

#: How often retention deletes a business database's consumed rows, and how many at once.
PURGE_EVERY = timedelta(hours=1)
PURGE_LIMIT = 5000


@dataclass(frozen=True)
class PollInterval:
    """The adaptive poll interval's bounds, seconds."""

    min: float = 0.05
    max: float = 2.0

    def next(self, current: float, handled: int, full: bool) -> float:
        """The wait after a pass that handled ``handled`` rows (``full``: a whole batch)."""
        if full:
            return 0.0
        if handled:
            return self.min
        return min(max(current, self.min) * 2, self.max)


class Relay:
    """One business database's relay (a stage: ``run_once`` is one pass)."""

    def __init__(
        self,
        database: str,
        source: OutboxSource,
        store: RelayStore,
        clock: Clock,
        *,
        batch_size: int = 200,
        poll: PollInterval | None = None,
        retention: timedelta | None = None,
        observer: RelayObserver | None = None,
    ) -> None:
        self.database = database
        self.source = source
        self.store = store
        self.clock = clock
        self.batch_size = batch_size
        self.poll = poll or PollInterval()
        self.retention = retention
        self.observer = observer or NullRelayObserver()
        self.interval = self.poll.min
        self._purged_at: datetime | None = None

    async def run_once(self) -> int:
        now = self.clock.now()
        read: list[SourceRow] = []

        async def unconsumed() -> Sequence[SourceRow]:
            read[:] = await self.source.unconsumed(self.batch_size)
            return read

        relayed = await self.store.relay(self.database, unconsumed, now)
        if relayed.ids:
            await self.source.mark_consumed(relayed.ids)
        for source_id, sqlstate, error in relayed.quarantined:
            self.observer.relay_quarantined(self.database, sqlstate)
            logger.error(
                "business outbox row quarantined: PostgreSQL refused to store it",
                extra={
                    "action": "relay_quarantined",
                    "database": self.database,
                    "source_id": source_id,
                    "sqlstate": sqlstate,
                    "error": error,
                },
            )
        handled = len(relayed.ids)
        self.interval = self.poll.next(self.interval, handled, handled >= self.batch_size)
        lag = (now - read[0].created_at).total_seconds() if read else 0.0
        self.observer.relay_pass(self.database, relayed.inserted, max(lag, 0.0), self.interval)
        if not handled and relayed.turn:
            await self._purge(now)
        return handled

    async def _purge(self, now: datetime) -> None:
        """Retention: consumed rows older than the retention period, once an hour."""
        if self.retention is None:
            return
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        deleted = await self.source.purge(now - self.retention, PURGE_LIMIT)
        if deleted:
            logger.info(
                "business outbox rows purged",
                extra={"action": "relay_purge", "database": self.database, "rows": deleted},
            )

"""The relay's seams: a business database's outbox (read, marked, purged) and syncd's
own outbox, into which its rows are copied exactly once.

:class:`OutboxSource` is implemented by :class:`syncd.db.mysql.outbox.MySQLOutboxSource`,
:class:`RelayStore` by :class:`syncd.db.relay_store.PostgresRelayStore`. Every method is
one transaction; a database failure raises ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SourceRow:
    """One row of a business database's ``syncd_outbox``, as it was written there."""

    id: int
    created_at: datetime
    kind: str
    business_key: str
    action: str
    #: The payload's JSON text as the business database holds it (None: SQL NULL).
    payload: str | None
    originator: str | None
    request_id: str | None


@dataclass(frozen=True)
class Relayed:
    """What one pass copied: the source ids now in ``syncd.outbox`` (inserted now or
    before), how many were new, and those PostgreSQL refused (carried into quarantine)."""

    ids: tuple[int, ...] = ()
    inserted: int = 0
    quarantined: tuple[tuple[int, str, str], ...] = ()  # (source id, sqlstate, error)
    #: Whether this replica held the database's turn (another replica relays meanwhile).
    turn: bool = True


@dataclass(frozen=True)
class Backlog:
    """A business database's unrelayed rows: how many, and the oldest's time (UTC)."""

    waiting: int
    oldest_at: datetime | None


class OutboxSource(Protocol):
    """A business database's ``syncd_outbox``."""

    async def unconsumed(self, limit: int) -> list[SourceRow]:
        """Up to ``limit`` rows not marked consumed, in id order."""
        ...

    async def mark_consumed(self, ids: Sequence[int]) -> int:
        """Mark these rows consumed; how many were not yet."""
        ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows consumed before ``before``."""
        ...

    async def backlog(self) -> Backlog: ...


class RelayStore(Protocol):
    """syncd's own outbox, as the relay writes it."""

    async def relay(
        self,
        database: str,
        read: Callable[[], Awaitable[Sequence[SourceRow]]],
        now: datetime,
    ) -> Relayed:
        """Holding the database's turn (one replica at a time), ``read`` rows and insert
        them into ``syncd.outbox``, each at most once by (database, source id); a row
        PostgreSQL refuses is stored as a stand-in and quarantined with the error. Returns
        ``Relayed(turn=False)`` without reading when another replica holds the turn."""
        ...


class RelayObserver(Protocol):
    def relay_pass(self, database: str, relayed: int, lag: float, interval: float) -> None: ...

    def relay_quarantined(self, database: str, sqlstate: str) -> None: ...


class NullRelayObserver:
    def relay_pass(self, database: str, relayed: int, lag: float, interval: float) -> None:
        pass

    def relay_quarantined(self, database: str, sqlstate: str) -> None:
        pass

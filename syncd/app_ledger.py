"""The leader duty that purges the business databases' write-back ledgers
(:mod:`syncd.pipeline.ledger_retention`), for the Runner's scheduler.

The duty opens its own engines for a run and disposes of them after it: it runs hourly,
on one replica at a time, and needs no connection in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from syncd.db.ledger_store import PostgresLedgerApprovals
from syncd.pipeline.ledger_retention import LedgerRetention
from syncd.ports import Clock
from syncd.settings import Settings

#: How often the duty runs, seconds.
LEDGER_RETENTION_EVERY = 3600


def written_databases(settings: Settings) -> list[str]:
    """The business databases some kind writes back to: they have a ledger."""
    named = {k.database for k in settings.kinds.values() if k.database and k.write_back}
    return sorted(name for name in settings.databases if name in named)


def ledger_retention(
    settings: Settings, pool: AsyncConnectionPool[Any], clock: Clock, *, owner: str
) -> Callable[[], Awaitable[int]] | None:
    """The duty, or None when no kind writes back to a business database."""
    names = written_databases(settings)
    if not names:
        return None

    async def run() -> int:
        from syncd.db.mysql.engine import create_engine
        from syncd.db.mysql.ledger import MySQLLedger

        engines = {name: create_engine(settings.databases[name].plain(name)) for name in names}
        try:
            ledgers = {
                name: MySQLLedger(name, engine, settings.databases[name].statement_timeout)
                for name, engine in engines.items()
            }
            retention = {
                name: timedelta(days=settings.databases[name].ledger_retention_days)
                for name in names
            }
            approvals = PostgresLedgerApprovals(pool, actor=owner)
            return await LedgerRetention(ledgers, approvals, clock, retention).run_once()
        finally:
            for engine in engines.values():
                await engine.dispose()

    return run

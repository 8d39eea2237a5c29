"""LISTEN on a dedicated connection: NOTIFY is a hint that wakes the daemon.

The connection lives outside the pool. When it breaks (PostgreSQL restart, network cut)
the loop reconnects with backoff and logs ``listen_reconnect``; a missed notification
costs at most one poll interval, because the daemon also polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from syncd.db.connect import redact
from syncd.db.queries import QUERIES

logger = logging.getLogger(__name__)


class Listener:
    def __init__(
        self,
        dsn: str,
        channels: tuple[str, ...],
        on_notify: Callable[[str], None],
        *,
        keepalive: float = 30.0,
        backoff_cap: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.channels = channels
        self.on_notify = on_notify
        self.keepalive = keepalive
        self.backoff_cap = backoff_cap
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._session()
            except (psycopg.Error, OSError) as exc:
                self.connected.clear()
                self.reconnects += 1
                logger.warning(
                    "LISTEN connection lost; reconnecting",
                    extra={
                        "action": "listen_reconnect",
                        "error": redact(str(exc)).strip(),
                        "delay": round(delay, 1),
                    },
                )
                # wake the daemon: something may have been missed while disconnected
                self.on_notify("")
                await asyncio.sleep(delay)
                delay = min(self.backoff_cap, delay * 2)
            else:
                delay = 0.5

    async def _session(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, application_name="syncd-listen"
        ) as conn:
            for channel in self.channels:
                await conn.execute(
                    psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel))
                )
            self.connected.set()
            while True:
                async for note in conn.notifies(timeout=self.keepalive, stop_after=100):
                    self.on_notify(note.channel)
                await conn.execute(QUERIES["ping"])

"""``PostgresInbox``: received DingTalk events, stored once each in ``syncd.inbox``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.dingtalk.events import InboundEvent
from syncd.errors import StoreError

logger = logging.getLogger(__name__)


class PostgresInbox:
    """Implements ``syncd.ports.InboxWriter``: committed before returning."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def put(self, event: InboundEvent) -> bool:
        [new] = await self.put_many([event])
        return new

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        if not events:
            return []
        rows = [
            {
                "dedup_key": e.dedup_key,
                "channel": e.channel,
                "event_type": e.event_type,
                "instance_id": e.instance_id,
                "payload": dict(e.payload),
            }
            for e in events
        ]
        params = {"events": Jsonb(rows)}
        try:
            # One statement, committed alone (syncd's pools are in autocommit mode).
            async with self._pool.connection() as conn:
                cursor = await conn.execute(QUERIES["insert_inbox_events"], params)
                inserted = {row["dedup_key"] for row in await cursor.fetchall()}
        except psycopg.Error as exc:
            raise StoreError(f"cannot store the events: {redact(str(exc)).strip()}") from exc
        news = []
        for event in events:
            new = event.dedup_key in inserted
            inserted.discard(event.dedup_key)  # a later copy in the same burst is a duplicate
            news.append(new)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "event stored" if new else "duplicate event ignored",
                    extra={
                        "action": "event_received" if new else "event_duplicate",
                        "channel": event.channel,
                        "event_type": event.event_type,
                        "instance_id": event.instance_id,
                    },
                )
        stored = sum(news)
        logger.info(
            "events stored",
            extra={
                "action": "events_received",
                "channel": events[0].channel,
                "count": stored,
                "duplicates": len(events) - stored,
            },
        )
        return news

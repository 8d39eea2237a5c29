"""``PostgresInbox``: received DingTalk events, stored once each in ``syncd.inbox``."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
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
        params = {
            "dedup_keys": [e.dedup_key for e in events],
            "channels": [e.channel for e in events],
            "event_types": [e.event_type for e in events],
            "instance_ids": [e.instance_id for e in events],
            "payloads": [json.dumps(dict(e.payload), ensure_ascii=False) for e in events],
        }
        try:
            # BEGIN, INSERT and COMMIT in one round trip.
            async with self._pool.connection() as conn:
                async with conn.pipeline(), conn.transaction():
                    cursor = await conn.execute(QUERIES["insert_inbox_events"], params)
                inserted = {row["dedup_key"] for row in await cursor.fetchall()}
        except psycopg.Error as exc:
            raise StoreError(f"cannot store the events: {redact(str(exc)).strip()}") from exc
        news = []
        for event in events:
            new = event.dedup_key in inserted
            inserted.discard(event.dedup_key)  # a later copy in the same burst is a duplicate
            news.append(new)
            logger.info(
                "event stored" if new else "duplicate event ignored",
                extra={
                    "action": "event_received" if new else "event_duplicate",
                    "channel": event.channel,
                    "event_type": event.event_type,
                    "instance_id": event.instance_id,
                },
            )
        return news

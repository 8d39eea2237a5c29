"""``PostgresInbox``: received DingTalk events, stored once each in ``syncd.inbox``."""

from __future__ import annotations

import logging
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
    """Implements ``syncd.ports.InboxWriter``: one insert, committed before returning."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def put(self, event: InboundEvent) -> bool:
        params = {
            "dedup_key": event.dedup_key,
            "channel": event.channel,
            "event_type": event.event_type,
            "instance_id": event.instance_id,
            "payload": Jsonb(dict(event.payload)),
        }
        try:
            # BEGIN, INSERT and COMMIT in one round trip.
            async with self._pool.connection() as conn:
                async with conn.pipeline(), conn.transaction():
                    cursor = await conn.execute(QUERIES["insert_inbox_event"], params)
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot store the event: {redact(str(exc)).strip()}") from exc
        new = row is not None
        logger.info(
            "event stored" if new else "duplicate event ignored",
            extra={
                "action": "event_received" if new else "event_duplicate",
                "channel": event.channel,
                "event_type": event.event_type,
                "instance_id": event.instance_id,
            },
        )
        return new

"""``PostgresInbox``: received DingTalk events, stored once each in ``syncd.inbox``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from syncd.db.connect import redact
from syncd.db.queries import QUERIES
from syncd.db.text import pg_json, pg_text
from syncd.dingtalk.events import InboundEvent
from syncd.errors import StoreError
from syncd.ports import Observer, SignedPut

logger = logging.getLogger(__name__)


def _rows(events: Sequence[InboundEvent]) -> Jsonb:
    """Events as the JSON array ``insert_inbox_events`` and ``claim_callback_signature``
    read: what PostgreSQL cannot store (NUL, NaN) as :mod:`syncd.db.text` shows it, so no
    event can fail every time it is stored."""
    return Jsonb(
        [
            {
                "dedup_key": pg_text(e.dedup_key),
                "channel": e.channel,
                "event_type": pg_text(e.event_type),
                "instance_id": pg_text(e.instance_id),
                "payload": pg_json(dict(e.payload)),
            }
            for e in events
        ]
    )


class PostgresInbox:
    """Implements ``syncd.ports.InboxWriter`` and ``CallbackInbox``: committed before
    returning."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def put(self, event: InboundEvent) -> bool:
        [new] = await self.put_many([event])
        return new

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        if not events:
            return []
        # One statement, committed alone (syncd's pools are in autocommit mode).
        rows = await self._run("insert_inbox_events", {"events": _rows(events)}, "the events")
        inserted = {row["dedup_key"] for row in rows}
        news = []
        for event in events:
            new = event.dedup_key in inserted
            inserted.discard(event.dedup_key)  # a later copy in the same burst is a duplicate
            news.append(new)
        _log_stored(events, news)
        return news

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        events = [event] if event is not None else []
        params = {"signature": signature, "expires_at": expires_at, "events": _rows(events)}
        [row] = await self._run("claim_callback_signature", params, "the callback")
        if not row["claimed"]:
            return "replay"
        if event is not None:
            _log_stored(events, [bool(row["stored"])])
        return "new" if event is None or row["stored"] else "duplicate"

    async def forget_signatures(self, now: datetime) -> int:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    QUERIES["delete_expired_callback_signatures"], {"now": now}
                )
                return int(cursor.rowcount)
        except psycopg.Error as exc:
            raise StoreError(f"cannot forget signatures: {redact(str(exc)).strip()}") from exc

    async def _run(self, query: str, params: dict[str, Any], what: str) -> list[dict[str, Any]]:
        """One statement, committed alone (syncd's pools are in autocommit mode)."""
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(QUERIES[query], params)
                return list(await cursor.fetchall())
        except psycopg.Error as exc:
            raise StoreError(f"cannot store {what}: {redact(str(exc)).strip()}") from exc


def _log_stored(events: Sequence[InboundEvent], news: Sequence[bool]) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        for event, new in zip(events, news, strict=True):
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


class WakingInbox:
    """Stores events, then wakes the daemon so they are applied at once."""

    def __init__(self, inner: PostgresInbox, wake: asyncio.Event, observer: Observer) -> None:
        self.inner = inner
        self.wake = wake
        self.observer = observer

    async def put(self, event: InboundEvent) -> bool:
        [new] = await self.put_many([event])
        return new

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        news = await self.inner.put_many(events)
        for event, new in zip(events, news, strict=True):
            self.observer.event_stored(event.channel, new)
        if any(news):
            self.wake.set()
        return news

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        outcome = await self.inner.put_signed(signature, expires_at, event)
        if event is not None and outcome != "replay":
            self.observer.event_stored(event.channel, outcome == "new")
            if outcome == "new":
                self.wake.set()
        return outcome

    async def forget_signatures(self, now: datetime) -> int:
        return await self.inner.forget_signatures(now)

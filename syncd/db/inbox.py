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
from syncd.domain import InboxItem
from syncd.errors import StoreError
from syncd.held import HeldEvents
from syncd.ports import Observer, SignedPut

logger = logging.getLogger(__name__)


def _stored(events: Sequence[InboundEvent]) -> list[dict[str, Any]]:
    """Events as the JSON array ``insert_inbox_events`` and ``claim_callback_signature``
    read: what PostgreSQL cannot store (NUL, NaN) as :mod:`syncd.db.text` shows it, so no
    event can fail every time it is stored."""
    return [
        {
            "dedup_key": pg_text(e.dedup_key),
            "channel": e.channel,
            "event_type": pg_text(e.event_type),
            "instance_id": pg_text(e.instance_id),
            "payload": pg_json(dict(e.payload)),
        }
        for e in events
    ]


class PostgresInbox:
    """Implements ``syncd.ports.InboxWriter`` and ``CallbackInbox``: committed before
    returning. With ``held``, a burst that fits is stored leased to this replica and
    handed to its apply stage in memory (:mod:`syncd.held`)."""

    def __init__(self, pool: AsyncConnectionPool[Any], held: HeldEvents | None = None) -> None:
        self._pool = pool
        self.held = held

    async def put(self, event: InboundEvent) -> bool:
        [new] = await self.put_many([event])
        return new

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        if not events:
            return []
        stored = _stored(events)
        lease_until = self.held.lease_for(len(events)) if self.held is not None else None
        params = {"events": Jsonb(stored), "lease_until": lease_until}
        # One statement, committed alone (syncd's pools are in autocommit mode).
        rows = await self._run("insert_inbox_events", params, "the events")
        inserted = {row["dedup_key"]: row for row in rows}
        news, items = [], []
        for event in stored:
            # a later copy in the same burst is a duplicate
            row = inserted.pop(event["dedup_key"], None)
            news.append(row is not None)
            if row is not None and lease_until is not None:
                items.append(_item(row, event))
        if self.held is not None and lease_until is not None:
            self.held.hold(items, lease_until)
        _log_stored(events, news)
        return news

    async def release(self) -> None:
        """Give back the leases of the events held for this replica's apply (at a clean
        stop), so that any replica applies them at once; best effort (a lease ends)."""
        ids = self.held.release() if self.held is not None else []
        if not ids:
            return
        try:
            await self._run("release_inbox_events", {"ids": ids}, "the leases given back")
        except StoreError as exc:
            logger.warning(
                "could not give back held events: %s",
                exc,
                extra={"action": "held_release", "count": len(ids), "error": str(exc)},
            )

    async def put_signed(
        self, signature: str, expires_at: datetime, event: InboundEvent | None
    ) -> SignedPut:
        events = [event] if event is not None else []
        params = {
            "signature": signature,
            "expires_at": expires_at,
            "events": Jsonb(_stored(events)),
        }
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


def _item(row: dict[str, Any], event: dict[str, Any]) -> InboxItem:
    """A stored event as a claim would have read it back (claimed once)."""
    return InboxItem(
        id=row["id"],
        channel=event["channel"],
        event_type=event["event_type"],
        instance_id=event["instance_id"],
        payload=event["payload"],
        received_at=row["received_at"],
        attempts=1,
    )


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

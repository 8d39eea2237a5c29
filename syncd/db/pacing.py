"""``PostgresPacer``: DingTalk call slots handed out by PostgreSQL to every replica.

Each endpoint has a row in ``syncd.rate_limit`` holding its next free slot. Reserving a
call is one autocommitted ``UPDATE`` that moves the slot forward by ``1 / rate`` seconds
and returns how long the caller must wait, computed on the database's clock. The row
lock serialises replicas, so the slots all replicas get are at least ``1 / rate`` apart
and together they stay under the rate. A throttle answer pushes the shared slot past
DingTalk's penalty for everyone, and halves this replica's own rate for a while
(:class:`~syncd.dingtalk.pacing.Backoff`). If the database cannot be reached the call is
not sent: :class:`~syncd.errors.DingTalkTransient`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from syncd.db.queries import QUERIES
from syncd.dingtalk.pacing import DEFAULT_MAX_WAIT, DEFAULT_RATE, Backoff, Sleep
from syncd.errors import DingTalkThrottled, DingTalkTransient
from syncd.ports import Clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """A reserved call slot: when it starts (database time) and how long to wait for it."""

    at: datetime
    wait: float


class PostgresPacer:
    """Implements :class:`~syncd.dingtalk.pacing.Pacer` for any number of replicas."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        clock: Clock,
        rate: float = DEFAULT_RATE,
        rates: Mapping[str, float] | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Sleep = asyncio.sleep,
        queries: Mapping[str, LiteralString] = QUERIES,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._pool = pool
        self._clock = clock
        self._rate = rate
        self._rates = dict(rates or {})
        self._max_wait = max_wait
        self._sleep = sleep
        self._queries = queries
        self._backoff: dict[str, Backoff] = {}
        self._known: set[str] = set()

    def _interval(self, endpoint: str) -> float:
        factor = self._backoff.setdefault(endpoint, Backoff()).factor(self._clock.monotonic())
        return 1.0 / (self._rates.get(endpoint, self._rate) * factor)

    async def _fetch(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(self._queries[name], params)
                row = await cursor.fetchone() if cursor.description else None
        except psycopg.Error as exc:
            raise DingTalkTransient("pacing is unavailable (database error)") from exc
        if row is None:
            return None
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)

    async def _ensure(self, endpoint: str) -> None:
        if endpoint not in self._known:
            await self._fetch("ensure_rate_limit_endpoint", {"endpoint": endpoint})
            self._known.add(endpoint)

    async def reserve(self, endpoint: str) -> Slot | None:
        """Take the next slot, or ``None`` when it is more than ``max_wait`` away."""
        await self._ensure(endpoint)
        params = {
            "endpoint": endpoint,
            "interval": self._interval(endpoint),
            "max_wait": self._max_wait,
        }
        row = await self._fetch("reserve_rate_slot", params)
        return None if row is None else Slot(at=row[0], wait=float(row[1]))

    async def acquire(self, endpoint: str) -> None:
        slot = await self.reserve(endpoint)
        if slot is None:
            row = await self._fetch("select_rate_slot_wait", {"endpoint": endpoint})
            wait = float(row[0]) if row is not None else self._max_wait
            raise DingTalkThrottled(
                f"{endpoint} is paced; try again later", retry_after=wait, code="localPacing"
            )
        if slot.wait > 0:
            await self._sleep(slot.wait)

    async def penalize(self, endpoint: str, seconds: float) -> None:
        self._backoff.setdefault(endpoint, Backoff()).throttled(self._clock.monotonic())
        await self._ensure(endpoint)
        await self._fetch("penalize_rate_limit", {"endpoint": endpoint, "seconds": seconds})
        logger.warning(
            "DingTalk throttled %s; all replicas pause it for %ss",
            endpoint,
            seconds,
            extra={"action": "dingtalk_throttled", "endpoint": endpoint, "retry_after": seconds},
        )

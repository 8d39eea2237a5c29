"""``PostgresPacer``: DingTalk call slots handed out by PostgreSQL to every replica.

Each endpoint has a row in ``syncd.rate_limit`` holding its next free slot. Reserving a
call is one autocommitted ``UPDATE`` that moves the slot forward by
``(1 + margin) / rate`` seconds and returns when the slot starts, on the database's
clock. The row lock serialises replicas, so the slots all replicas get are at least that
far apart and any ``rate`` of them span ``1 + margin`` seconds.

A replica measures its lateness from the slot's start, placed on its own clock by
:class:`DatabaseClock` (the reservations' round trips bound where the database's clock
stands, to within the fastest of them, and a slot is placed as early as those bounds
allow): waiting for a pool connection and the statement's way there do not count, the
wake-up after the wait does. A call later than ``late`` takes a new slot instead of
being sent (:func:`~syncd.dingtalk.pacing.wait_for_slot`), so calls from every replica
leave at most ``late`` after their slots and DingTalk sees no window over the rate.

A throttle answer pushes the shared slot past DingTalk's penalty for everyone and cuts
the rate (:class:`~syncd.dingtalk.pacing.Backoff`); the cut is kept in the row too, and
every replica follows it from its next slot on, so replicas climb back together. If the
database cannot be reached the call is not sent: :class:`~syncd.errors.DingTalkTransient`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from syncd.db.queries import QUERIES
from syncd.dingtalk.pacing import (
    DEFAULT_LATE,
    DEFAULT_MARGIN,
    DEFAULT_MAX_WAIT,
    DEFAULT_RATE,
    LATE_SHARE,
    Backoff,
    SendWindow,
    Sleep,
    wait_for_slot,
)
from syncd.errors import DingTalkThrottled, DingTalkTransient
from syncd.ports import Clock
from syncd.settings import DingTalkSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """A reserved call slot: when it starts (database time), how long after the
    reservation, and on this process's monotonic clock (as early as it may be)."""

    at: datetime
    wait: float
    due: float


class DatabaseClock:
    """Where the database's clock stands against this process's monotonic clock.

    The database read its clock (``database``) somewhere between ``asked`` and ``got`` on
    ours, so its offset lies between ``database - got`` and ``database - asked``. The
    samples of the last ``keep`` seconds together narrow it to the fastest round trip
    among them. :meth:`local` uses the upper bound, so a time placed on our clock is never
    later than it really is there and a lateness is never under-counted. Samples that
    cannot all hold (a clock was stepped) are forgotten but the newest.
    """

    def __init__(self, keep: float = 10.0) -> None:
        self._keep = keep
        self._high: deque[tuple[float, float]] = deque()  # (asked, bound): increasing
        self._low: deque[tuple[float, float]] = deque()  # (asked, bound): decreasing

    def observe(self, asked: float, got: float, database: float) -> None:
        high, low = database - asked, database - got
        while self._high and self._high[-1][1] >= high:
            self._high.pop()
        self._high.append((asked, high))
        while self._low and self._low[-1][1] <= low:
            self._low.pop()
        self._low.append((asked, low))
        for bounds in (self._high, self._low):
            while bounds[0][0] < asked - self._keep:
                bounds.popleft()
        if self._low[0][1] > self._high[0][1]:
            self._high = deque([(asked, high)])
            self._low = deque([(asked, low)])

    def local(self, database: float) -> float:
        """The earliest time on our clock the database's ``database`` may be."""
        return database - self._high[0][1]


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
        margin: float = DEFAULT_MARGIN,
        late: float = DEFAULT_LATE,
        sleep: Sleep = asyncio.sleep,
        queries: Mapping[str, LiteralString] = QUERIES,
        database_clock: bool = True,
    ) -> None:
        """``database_clock=False`` takes the time from ``clock`` (deterministic tests);
        replicas must share the database's clock."""
        if rate <= 0 or not 0 <= late <= margin:
            raise ValueError("rate must be positive and 0 <= late <= margin")
        self._pool = pool
        self._clock = clock
        self._rate = rate
        self._rates = dict(rates or {})
        self._max_wait = max_wait
        self._margin = margin
        self._late = late
        self._sleep = sleep
        self._database_clock = database_clock
        self._queries = queries
        self._backoff: dict[str, Backoff] = {}
        self._known: set[str] = set()
        self._clock_bounds = DatabaseClock()

    def _interval(self, endpoint: str) -> float:
        factor = self._backoff.setdefault(endpoint, Backoff()).factor(self._clock.monotonic())
        return (1.0 + self._margin) / (self._rates.get(endpoint, self._rate) * factor)

    def _now(self) -> datetime | None:
        return None if self._database_clock else self._clock.now()

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
            "now": self._now(),
        }
        asked = self._clock.monotonic()
        row = await self._fetch("reserve_rate_slot", params)
        if row is None:
            return None
        got = self._clock.monotonic()
        at, database_now, wait, cut_ago, cut_peak, cut_share = row
        self._clock_bounds.observe(asked, got, database_now)
        if cut_ago is not None:
            since = (asked + got) / 2 - cut_ago
            self._backoff.setdefault(endpoint, Backoff()).adopt(cut_peak, cut_share, since)
        due = self._clock_bounds.local(database_now) + wait
        return Slot(at=at, wait=float(wait), due=due)

    async def _wait(self, endpoint: str) -> float:
        slot = await self.reserve(endpoint)
        if slot is None:
            params = {"endpoint": endpoint, "now": self._now()}
            row = await self._fetch("select_rate_slot_wait", params)
            wait = float(row[0]) if row is not None else self._max_wait
            raise DingTalkThrottled(
                f"{endpoint} is paced; try again later", retry_after=wait, code="localPacing"
            )
        return slot.due

    async def acquire(self, endpoint: str) -> SendWindow:
        return await wait_for_slot(
            endpoint,
            lambda: self._wait(endpoint),
            clock=self._clock,
            sleep=self._sleep,
            late=self._late,
        )

    async def penalize(self, endpoint: str, seconds: float) -> None:
        backoff = self._backoff.setdefault(endpoint, Backoff())
        cut = backoff.throttled(self._clock.monotonic())
        await self._ensure(endpoint)
        params = {"endpoint": endpoint, "seconds": seconds, "now": self._now()}
        await self._fetch("penalize_rate_limit", params)
        shared = backoff.last_cut()
        if cut and shared is not None:
            peak, share, _ = shared
            await self._fetch(
                "cut_rate_limit",
                {
                    "endpoint": endpoint,
                    "peak": peak,
                    "share": share,
                    "cooldown": backoff.cooldown,
                    "now": self._now(),
                },
            )
        logger.warning(
            "DingTalk throttled %s; all replicas pause it for %ss",
            endpoint,
            seconds,
            extra={"action": "dingtalk_throttled", "endpoint": endpoint, "retry_after": seconds},
        )


def pacer_for(
    pool: AsyncConnectionPool[Any], clock: Clock, settings: DingTalkSettings
) -> PostgresPacer:
    """The daemon's pacer: ``[dingtalk]`` gives the rate and the margin."""
    margin = settings.pacing_margin
    return PostgresPacer(
        pool, clock=clock, rate=settings.rate_per_second, margin=margin, late=margin * LATE_SHARE
    )

"""Pacing of DingTalk calls: one bucket per endpoint, backing off when throttled.

DingTalk allows 20 calls per second per app and API (contract §8). Each endpoint gets a
bucket in GCRA form (a "theoretical arrival time", ``tat``): a call reserves the next
free slot, slots are ``1 / rate`` seconds apart, and the caller waits for its slot.
When DingTalk throttles anyway, the endpoint is blocked for the delay DingTalk asked for
and its rate is halved; the rate then recovers linearly. A call that would wait longer
than ``max_wait`` is not sent: :class:`~syncd.errors.DingTalkThrottled` tells the caller
when to come back, so no lease is held across a long pause.

:class:`MemoryPacer` paces one process. ``syncd.db.pacing.PostgresPacer``
hands out the same slots from a row per endpoint in PostgreSQL, so any number of
replicas together stay under the rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from syncd.errors import DingTalkThrottled
from syncd.ports import Clock

logger = logging.getLogger(__name__)

#: Safely under DingTalk's 20 calls per second per app and API.
DEFAULT_RATE = 15.0
DEFAULT_MAX_WAIT = 10.0
MIN_FACTOR = 0.125
RECOVERY_SECONDS = 30.0

Sleep = Callable[[float], Awaitable[None]]


class Pacer(Protocol):
    """Decides when a call to an endpoint may be sent."""

    async def acquire(self, endpoint: str) -> None:
        """Return when a call may be sent; raise DingTalkThrottled if that is too far off."""
        ...

    async def penalize(self, endpoint: str, seconds: float) -> None:
        """DingTalk throttled a call: send nothing to ``endpoint`` for ``seconds``."""
        ...


@dataclass
class Backoff:
    """The share of the configured rate in use: halved on throttling, recovering linearly."""

    recovery_seconds: float = RECOVERY_SECONDS
    floor: float = MIN_FACTOR
    _factor: float = 1.0
    _since: float = 0.0

    def factor(self, now: float) -> float:
        regained = (now - self._since) / self.recovery_seconds if self.recovery_seconds else 1.0
        return min(1.0, self._factor + max(0.0, regained))

    def throttled(self, now: float) -> None:
        self._factor = max(self.floor, self.factor(now) / 2)
        self._since = now


@dataclass
class Bucket:
    """GCRA state of one endpoint (times on the monotonic clock)."""

    rate: float
    burst: int = 1
    tat: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)

    def interval(self, now: float) -> float:
        return 1.0 / (self.rate * self.backoff.factor(now))

    def next_wait(self, now: float) -> float:
        """How long a call asking now would wait, without reserving anything."""
        tolerance = (self.burst - 1) * self.interval(now)
        return max(0.0, self.tat - tolerance - now)

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait for it."""
        wait = self.next_wait(now)
        self.tat = max(self.tat, now) + self.interval(now)
        return wait

    def penalize(self, now: float, seconds: float) -> None:
        self.backoff.throttled(now)
        tolerance = (self.burst - 1) * self.interval(now)
        self.tat = max(self.tat, now + seconds + tolerance)


class MemoryPacer:
    """Paces the calls of one process; share one instance between clients."""

    def __init__(
        self,
        *,
        clock: Clock,
        rate: float = DEFAULT_RATE,
        rates: dict[str, float] | None = None,
        burst: int = 1,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._clock = clock
        self._rate = rate
        self._rates = rates or {}
        self._burst = burst
        self._max_wait = max_wait
        self._sleep = sleep
        self._buckets: dict[str, Bucket] = {}
        self.waited = 0.0  # seconds spent waiting for slots, for metrics

    def bucket(self, endpoint: str) -> Bucket:
        found = self._buckets.get(endpoint)
        if found is None:
            found = Bucket(rate=self._rates.get(endpoint, self._rate), burst=self._burst)
            self._buckets[endpoint] = found
        return found

    async def acquire(self, endpoint: str) -> None:
        bucket = self.bucket(endpoint)
        now = self._clock.monotonic()
        wait = bucket.next_wait(now)
        if wait > self._max_wait:
            raise DingTalkThrottled(
                f"{endpoint} is paced; try again later", retry_after=wait, code="localPacing"
            )
        wait = bucket.reserve(now)
        if wait > 0:
            self.waited += wait
            await self._sleep(wait)

    async def penalize(self, endpoint: str, seconds: float) -> None:
        self.bucket(endpoint).penalize(self._clock.monotonic(), seconds)
        logger.warning(
            "DingTalk throttled %s; pausing it for %ss",
            endpoint,
            seconds,
            extra={"action": "dingtalk_throttled", "endpoint": endpoint, "retry_after": seconds},
        )

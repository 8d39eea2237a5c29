"""Timed work of the simulator: rule decisions, event deliveries, retries, pings.

Work is put on a timeline keyed by the injected clock's monotonic time. With a real
clock a background task (:meth:`Timeline.run_forever`) runs it as it falls due; with a
fake clock only :meth:`Timeline.advance` runs it, so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from syncd.ports import Clock

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    name: str = field(compare=False)
    job: Job = field(compare=False)


class Timeline:
    """A queue of jobs ordered by due time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def at(self, delay: float, name: str, job: Job) -> None:
        """Run ``job`` once ``delay`` seconds have passed on the clock."""
        due = self._clock.monotonic() + max(delay, 0.0)
        heapq.heappush(self._heap, _Entry(due, next(self._seq), name, job))
        self._wake.set()

    def pending(self) -> list[tuple[float, str]]:
        """(seconds from now, name) of every job still waiting."""
        now = self._clock.monotonic()
        return [(e.due - now, e.name) for e in sorted(self._heap)]

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    async def run_due(self) -> int:
        """Run every job that is due now, including jobs they schedule for now."""
        count = 0
        while self._heap and self._heap[0].due <= self._clock.monotonic():
            entry = heapq.heappop(self._heap)
            count += 1
            try:
                await entry.job()
            except Exception:
                logger.exception(
                    "simulator job failed", extra={"action": "sim_job_failed", "job": entry.name}
                )
        return count

    async def advance(self, seconds: float) -> int:
        """Move a fake clock forward step by step, running jobs at their due times."""
        advance = getattr(self._clock, "advance", None)
        if advance is None:
            raise TypeError("advance() needs a clock with an advance() method (FakeClock)")
        target = self._clock.monotonic() + seconds
        count = await self.run_due()
        while (due := self.next_due()) is not None and due <= target:
            step = due - self._clock.monotonic()
            if step > 0:
                advance(step)
            count += await self.run_due()
        rest = target - self._clock.monotonic()
        if rest > 0:
            advance(rest)
        return count + await self.run_due()

    async def run_forever(self) -> None:
        """Run jobs as they fall due on a real clock, until cancelled."""
        while True:
            self._wake.clear()
            await self.run_due()
            due = self.next_due()
            timeout = None if due is None else max(due - self._clock.monotonic(), 0.0)
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

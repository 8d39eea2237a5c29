"""Virtual time for pacing tests: tasks sleep on a FakeClock and are woken in time order.

``VirtualTime.sleep`` is a pacer's (or a worker's) sleep; ``run`` drives the tasks: once
every live task is asleep it moves the clock to the earliest wake-up and wakes that task
(plus the lateness the test gives it), so concurrent callers interleave as they would in
real time, deterministically and in no real time at all. Tasks may also wait on real I/O
(PostgreSQL): the clock only moves once every live task sleeps again.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from syncd.testing import FakeClock


class VirtualTime:
    def __init__(self, clock: FakeClock, lateness: Callable[[], float] = lambda: 0.0) -> None:
        self.clock = clock
        self._lateness = lateness
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        """Wake ``seconds`` (plus the lateness) from now on the virtual clock."""
        wake = asyncio.get_running_loop().create_future()
        at = self.clock.monotonic() + max(0.0, seconds) + self._lateness()
        heapq.heappush(self._sleepers, (at, next(self._order), wake))
        self._changed.set()
        await wake

    async def nap(self, seconds: float) -> None:
        """A sleep that is never late (a worker's think time, not a pacer's wait)."""
        wake = asyncio.get_running_loop().create_future()
        at = self.clock.monotonic() + max(0.0, seconds)
        heapq.heappush(self._sleepers, (at, next(self._order), wake))
        self._changed.set()
        await wake

    async def run(self, *coros: Coroutine[Any, Any, None]) -> None:
        """Run the coroutines to the end; an error in one is raised."""
        tasks = [asyncio.create_task(coro) for coro in coros]
        for task in tasks:
            task.add_done_callback(lambda _: self._changed.set())
        while alive := [t for t in tasks if not t.done()]:
            if len(self._sleepers) < len(alive):
                self._changed.clear()
                await self._changed.wait()
                continue
            at, _, wake = heapq.heappop(self._sleepers)
            if at > self.clock.monotonic():
                self.clock.advance(at - self.clock.monotonic())
            wake.set_result(None)
        for task in tasks:
            task.result()

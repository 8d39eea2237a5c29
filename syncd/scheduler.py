"""Periodic jobs (failed-push sweep, retention) on APScheduler 3.x, in memory.

The schedule lives in code; the database is the durable state. Each job first takes its
turn through ``syncd.control`` (a lease, not a lock), so with any number of replicas a
job runs once per interval. This is the only module that imports APScheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from syncd.errors import SyncdError
from syncd.ports import Clock

logger = logging.getLogger(__name__)

TakeTurn = Callable[[str, timedelta], Awaitable[bool]]


class Scheduler:
    def __init__(self, clock: Clock, take_turn: TakeTurn) -> None:
        self.clock = clock
        self.take_turn = take_turn
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def every(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        period = timedelta(seconds=interval)

        async def run() -> None:
            try:
                if await self.take_turn(name, period * 0.9):
                    await job()
            except SyncdError as exc:
                logger.error(
                    "periodic job failed",
                    extra={"action": "job_error", "job": name, "error": str(exc)},
                )

        self._scheduler.add_job(
            run,
            "interval",
            seconds=interval,
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

"""Three replicas' ``PostgresPacer`` on one database, in virtual time: DingTalk's count.

Each replica has its own pacer (on one of two pools); every pacer takes the time from one FakeClock
(``database_clock=False``, so the run is deterministic) and sleeps in virtual time
(``tests.virtual_time``), woken as late as Hypothesis says. Whatever the lateness, the
calls all replicas send keep every ``limit`` of them ``1 + margin - late`` seconds
apart (so no window DingTalk counts holds more than ``limit`` after a network delay
varying by up to ``margin - late``), and with a backlog they use the rate.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from syncd.db.pacing import PostgresPacer
from syncd.dingtalk.pacing import DEFAULT_LATE, DEFAULT_MARGIN
from syncd.errors import DingTalkThrottled
from syncd.testing import FakeClock
from tests.unit.dingtalk.test_pacing_window import max_in_window
from tests.virtual_time import VirtualTime

from .test_pg_pacing import replicas  # noqa: F401 - the fixture: two pools, one database

LIMIT = 20
REPLICAS = 3  # pacers, on the two pools of ``replicas`` (two connections, one row lock)


async def _send(
    pools: list[AsyncConnectionPool[Any]], lateness: list[float], calls_each: int, workers: int
) -> list[float]:
    """Send times of ``calls_each`` calls from ``workers`` tasks on each replica."""
    # Ahead of the database's own clock, so the pacing rows' defaults lie in the past.
    clock = FakeClock(datetime.now(UTC) + timedelta(days=1))
    late = itertools.cycle(lateness)
    vt = VirtualTime(clock, lambda: next(late))
    endpoint = f"create-{uuid.uuid4().hex[:8]}"  # a fresh pacing row per example
    sent: list[float] = []

    async def worker(pacer: PostgresPacer) -> None:
        for _ in range(calls_each):
            for _ in range(10):  # given up after 10 refusals (late on every wake-up)
                try:
                    await pacer.acquire(endpoint)
                except DingTalkThrottled as refused:
                    await vt.nap(refused.retry_after)
                    continue
                sent.append(clock.monotonic())
                break

    pacers = [
        PostgresPacer(
            pools[n % len(pools)], clock=clock, rate=LIMIT, sleep=vt.sleep, database_clock=False
        )
        for n in range(REPLICAS)
    ]
    await vt.run(*(worker(p) for p in pacers for _ in range(workers)))
    return sent


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lateness=st.lists(st.floats(0, DEFAULT_LATE) | st.floats(0, 0.15), min_size=1, max_size=30),
    workers=st.integers(1, 3),
)
async def test_replicas_together_keep_every_window_under_the_limit(
    replicas: list[AsyncConnectionPool[Any]],  # noqa: F811 - the fixture
    lateness: list[float],
    workers: int,
) -> None:
    sent = await _send(replicas, lateness, calls_each=12, workers=workers)
    assert len(sent) <= 12 * workers * REPLICAS
    assert max_in_window(sent, 1.0 + DEFAULT_MARGIN - DEFAULT_LATE) <= LIMIT


async def test_replicas_together_use_the_rate(
    replicas: list[AsyncConnectionPool[Any]],  # noqa: F811 - the fixture
) -> None:
    sent = await _send(replicas, [0.0, 0.004, 0.009], calls_each=40, workers=2)
    assert len(sent) == 40 * 2 * REPLICAS
    rate = (len(sent) - 1) / (max(sent) - min(sent))
    assert LIMIT / (1 + DEFAULT_MARGIN) - 0.05 <= rate <= LIMIT / (1 + DEFAULT_MARGIN) + 1e-6

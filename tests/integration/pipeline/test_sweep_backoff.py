"""The failed-push sweep spends few calls: each read of DingTalk's list is metered and
the list is nearly always empty, so an empty sweep doubles the wait (up to an hour) and a
sweep that finds events brings it back to ``polling.failed_list_interval``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.pipeline.track import MAX_SWEEP_INTERVAL, SweepFailed
from syncd.testing import FakeClock
from tests.fakes import MemoryControlStore, MemoryDb, MemoryInbox

from .conftest import APP_KEY

INTERVAL = 300.0


def sweeps(env: Any) -> int:
    rows = env.sql("SELECT coalesce(sum(calls), 0) FROM syncd.usage WHERE purpose = 'failed_list'")
    return int(rows[0][0])


async def test_empty_sweeps_back_off_and_found_events_reset_the_wait(env):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("nobody listens", request=request)

    settings = env.settings(events={"stream": False}, polling={"quiet_after": 86400})
    async with env.daemon(settings) as daemon:
        ticks = int(86400 / INTERVAL)  # a day of the schedule's ticks
        for _ in range(ticks):
            await daemon.sweep(backoff=INTERVAL)
            await env.advance(INTERVAL)
        quiet_day = sweeps(env)
        # about one an hour once backed off, not one every five minutes
        assert quiet_day <= 86400 / MAX_SWEEP_INTERVAL.total_seconds() + 6
        assert quiet_day < ticks / 8

        # DingTalk fails to push an outcome: it is listed, and found within the hour
        env.sim.callbacks.set_client(httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
        env.sim.callbacks.set_url(APP_KEY, "http://unreachable.example/callback")
        env.submit_leave(days=1)
        await daemon.drain()
        found, waited = 0, 0.0
        while not found:
            await env.advance(INTERVAL)
            waited += INTERVAL
            found = await daemon.sweep(backoff=INTERVAL)
        assert waited <= MAX_SWEEP_INTERVAL.total_seconds() + 2 * INTERVAL
        before = sweeps(env)
        await env.advance(INTERVAL)
        await daemon.sweep(backoff=INTERVAL)  # the wait is back to the base interval
        assert sweeps(env) == before + 1
        await daemon.drain()
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gaps=st.lists(st.floats(0, 3 * 3600), min_size=1, max_size=60))
def test_the_backoff_never_waits_longer_than_the_cap(gaps: list[float]) -> None:
    """Whenever the scheduler calls, a sweep is due at most an hour (and half an
    interval) after the previous one, however irregular the calls."""

    class Empty:
        async def failed_events(self) -> tuple[list[Any], bool]:  # empty all month
            return [], False

    async def run() -> None:
        db, clock = MemoryDb(), FakeClock()
        sweeper = SweepFailed(Empty(), MemoryInbox(db, clock), MemoryControlStore(db), clock)
        last = clock.now()
        await sweeper.run_due(INTERVAL)
        for gap in gaps:
            clock.advance(gap)
            before = (await sweeper.control.usage(clock.now())).get("failed_list", 0)
            await sweeper.run_due(INTERVAL)
            after = (await sweeper.control.usage(clock.now())).get("failed_list", 0)
            if after > before:
                last = clock.now()
            limit = MAX_SWEEP_INTERVAL.total_seconds() + INTERVAL
            assert after > before or (clock.now() - last).total_seconds() < limit

    asyncio.run(run())

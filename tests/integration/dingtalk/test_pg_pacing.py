"""Pacing shared by replicas through PostgreSQL: two pacers, one schedule."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import httpx
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.clock import SystemClock
from syncd.db.pacing import PostgresPacer
from syncd.db.queries import QUERIES, parse_queries, sql_dir
from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.errors import DingTalkThrottled, DingTalkTransient
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, LEAVE


def _queries() -> Mapping[str, LiteralString]:
    """The pacing queries, from their own file until it is merged into queries.sql."""
    pending = sql_dir() / "queries_pacing.sql"
    return parse_queries(pending.read_text(encoding="utf-8")) if pending.exists() else QUERIES


@pytest.fixture
async def replicas(database: str) -> AsyncIterator[list[AsyncConnectionPool[Any]]]:
    """Two pools on one database, as two replicas would have."""
    pools: list[AsyncConnectionPool[Any]] = [
        AsyncConnectionPool(
            database,
            min_size=1,
            max_size=2,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )
        for _ in range(2)
    ]
    for pool in pools:
        await pool.open(wait=True)
    try:
        yield pools
    finally:
        for pool in pools:
            await pool.close()


def _pacer(pool: AsyncConnectionPool[Any], **kw: Any) -> PostgresPacer:
    return PostgresPacer(pool, clock=SystemClock(), queries=_queries(), **kw)


def _pacer_on(pool: AsyncConnectionPool[Any], clock: FakeClock, **kw: Any) -> PostgresPacer:
    return PostgresPacer(pool, clock=clock, queries=_queries(), **kw)


async def test_two_replicas_get_slots_one_interval_apart(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    first, second = (_pacer(pool, rate=10.0, max_wait=60.0) for pool in replicas)
    reservations = [p.reserve("workflow.get") for _ in range(15) for p in (first, second)]
    slots = await asyncio.gather(*reservations)
    times = sorted(slot.at for slot in slots if slot is not None)
    assert len(times) == 30
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.1 - 1e-6  # together: never more than 10 per second
    assert max(slot.wait for slot in slots if slot is not None) >= 2.8


async def test_other_endpoints_have_their_own_slots(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    pacer = _pacer(replicas[0], rate=1.0)
    first, other = await pacer.reserve("create"), await pacer.reserve("get")
    assert first is not None and other is not None and other.wait < 0.5


async def test_a_slot_too_far_off_is_not_taken(replicas: list[AsyncConnectionPool[Any]]) -> None:
    pacer = _pacer(replicas[0], rate=1.0, max_wait=2.5)
    slots = [await pacer.reserve("create") for _ in range(4)]
    assert [slot is None for slot in slots] == [False, False, False, True]
    with pytest.raises(DingTalkThrottled) as caught:
        await pacer.acquire("create")
    assert 0 < caught.value.retry_after <= 3 * 1.025  # three slots, each (1 + margin) / rate


async def test_a_throttle_seen_by_one_replica_pauses_the_other(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    first, second = (_pacer(pool) for pool in replicas)
    await first.penalize("create", 30.0)
    with pytest.raises(DingTalkThrottled) as caught:
        await second.acquire("create")
    assert caught.value.retry_after > 25.0


async def test_a_rate_cut_by_one_replica_is_followed_by_the_other(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    # Ahead of the database's own clock, so the pacing row's default lies in the past.
    clock = FakeClock(datetime.now(UTC) + timedelta(days=1))
    first, second = (
        _pacer_on(pool, clock, rate=10.0, max_wait=60.0, database_clock=False) for pool in replicas
    )
    endpoint = f"cut-{uuid.uuid4().hex[:8]}"
    await second.reserve(endpoint)
    await first.penalize(endpoint, 0.0)  # DingTalk throttled the first replica

    async def gaps() -> list[float]:
        slots = [await second.reserve(endpoint) for _ in range(3)]
        times = [slot.at for slot in slots if slot is not None]
        return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]

    # The first slot after the cut was asked for at the full rate; the next at 80% of it.
    assert await gaps() == pytest.approx([1.025 / 10, 1.025 / 8], rel=1e-3)
    # The second replica throttled too, by a call sent before the cut: not cut again.
    await second.penalize(endpoint, 0.0)
    assert await gaps() == pytest.approx([1.025 / 8, 1.025 / 8], rel=1e-3)
    # Later, a new throttle cuts again, from where the climb had got to (below 1).
    clock.advance(5.0)
    await second.penalize(endpoint, 0.0)
    later = await gaps()
    assert 1.025 / 8 < later[1] < 1.025 / 6


async def test_database_down_means_the_call_is_not_sent(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    pool = replicas[0]
    await pool.close()
    with pytest.raises(DingTalkTransient):
        await _pacer(pool).acquire("create")


async def _hammer(pacers: list[Pacer], each: int) -> int:
    """Two replicas read concurrently from a real-time simulator; returns the throttled count."""
    sim = Simulator(World.default())
    clients = [
        HttpxApprovalClient(
            build_http_client(
                APP_KEY,
                APP_SECRET,
                base_url="http://sim",
                transport=httpx.ASGITransport(app=sim.app),
            ),
            pacer=p,
        )
        for p in pacers
    ]
    instance_id = await clients[0].create_instance(LEAVE)
    calls = [c.get_instance(instance_id) for c in clients for _ in range(each)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    await sim.aclose()
    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, DingTalkThrottled)
    ]
    assert unexpected == []
    return sum(isinstance(r, DingTalkThrottled) for r in results)


@pytest.mark.slow
async def test_two_replicas_sharing_postgres_pacing_are_not_throttled(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    pacers: list[Pacer] = [_pacer(pool, rate=15.0) for pool in replicas]
    assert await _hammer(pacers, 15) == 0


@pytest.mark.slow
async def test_two_replicas_pacing_alone_are_throttled(
    replicas: list[AsyncConnectionPool[Any]],
) -> None:
    pacers: list[Pacer] = [MemoryPacer(clock=SystemClock(), rate=15.0) for _ in replicas]
    assert await _hammer(pacers, 15) > 0

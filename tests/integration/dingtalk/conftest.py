"""Fixtures for the DingTalk side: a pool on a fresh database and the inbox on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.dingtalk.models import CreateInstanceRequest
from syncd.dingtalk.models import FormComponentValue as Value
from syncd.dingtalk.pacing import MemoryPacer, Pacer
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock


@pytest.fixture
async def pool(database: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database, min_size=1, max_size=4, open=False, kwargs={"row_factory": dict_row}
    )
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def inbox(pool: AsyncConnectionPool[Any]) -> PostgresInbox:
    return PostgresInbox(pool)


InboxRows = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def inbox_rows(pool: AsyncConnectionPool[Any]) -> InboxRows:
    """Reads every inbox row, oldest first."""

    async def read() -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT dedup_key, channel, event_type, instance_id, payload"
                " FROM syncd.inbox ORDER BY id"
            )
            return list(await cursor.fetchall())

    return read


class FakeSleeper:
    """A pacer's sleep on a FakeClock: moves the clock to the end of the longest wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        target = self.clock.monotonic() + seconds
        if target > self.clock.monotonic():
            self.clock.advance(target - self.clock.monotonic())


APP_KEY, APP_SECRET = "dingsimappkey0001", "sim-app-secret-0001"

LEAVE = CreateInstanceRequest(
    process_code="PROC-SIM-LEAVE",
    originator_user_id="u1",
    dept_id=-1,
    form_component_values=[
        Value(name="请假类型", value="年假"),
        Value(name='["开始时间","结束时间"]', value='["2025-01-01","2025-01-02"]'),
        Value(name="天数", value="2"),
    ],
)


@dataclass
class SimEnv:
    """An in-process simulator on a FakeClock, and a way to build clients for it."""

    sim: Simulator
    clock: FakeClock
    pacer: MemoryPacer
    opened: list[httpx.AsyncClient] = field(default_factory=list)

    def http(self, secret: str = APP_SECRET, **kw: Any) -> httpx.AsyncClient:
        transport = kw.pop("transport", None) or httpx.ASGITransport(app=self.sim.app)
        http = build_http_client(
            APP_KEY, secret, base_url="http://sim", clock=self.clock, transport=transport, **kw
        )
        self.opened.append(http)
        return http

    def client(self, *, pacer: Pacer | None = None, **kw: Any) -> HttpxApprovalClient:
        return HttpxApprovalClient(self.http(**kw), pacer=pacer or self.pacer, clock=self.clock)


@pytest.fixture
async def env() -> AsyncIterator[SimEnv]:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    sim = Simulator(World.default(), clock=clock)
    env = SimEnv(sim, clock, MemoryPacer(clock=clock, sleep=FakeSleeper(clock)))
    try:
        yield env
    finally:
        for http in env.opened:
            await http.aclose()
        await sim.aclose()

"""An in-process world for pipeline tests: real PostgreSQL, the simulator over httpx's
ASGI transport, one fake clock shared by daemon and simulator, and no sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from syncd.daemon import Daemon
from syncd.demo.config import KINDS
from syncd.demo.legacy_app import prepare
from syncd.dingtalk.pacing import MemoryPacer
from syncd.settings import Settings
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

APP_KEY = "dingsimappkey0001"
APP_SECRET = "sim-app-secret-0001"

LEAVE_KIND: dict[str, Any] = KINDS["leave"]


def settings_for(dsn: str, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"dsn": dsn},
        "dingtalk": {"app_key": APP_KEY, "app_secret": APP_SECRET},
        "kinds": {"leave": LEAVE_KIND},
        "polling": {"quiet_after": 60},
        "pipeline": {"unknown_grace": 10},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Settings(**data)


@dataclass
class Env:
    dsn: str
    clock: FakeClock
    sim: Simulator

    def daemon(self, settings: Settings | None = None, **kw: Any) -> Daemon:
        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        pacer = MemoryPacer(clock=self.clock, rate=1000, sleep=sleep)
        transport = kw.pop("transport", None) or httpx.ASGITransport(app=self.sim.app)
        return Daemon(
            settings or settings_for(self.dsn),
            clock=self.clock,
            transport=transport,
            pacer=pacer,
            **kw,
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def submit_leave(self, applicant: str = "u1", days: int = 2, reason: str = "rest") -> int:
        """A leave request as the demo's application writes it (the capture trigger fires)."""
        [(key,)] = self.sql(
            "INSERT INTO app.leave_request "
            "(applicant, leave_type, start_date, end_date, days, reason, status) "
            "VALUES (%s, '年假', '2026-01-10', '2026-01-11', %s, %s, 'submitted') RETURNING id",
            applicant,
            days,
            reason,
        )
        return int(key)

    async def advance(self, seconds: float) -> None:
        """Move the shared clock; the simulator runs what became due (rules, pushes)."""
        await self.sim.advance(seconds)


@pytest.fixture
async def env(database) -> AsyncIterator[Env]:
    """The demo's application tables and capture triggers, a simulator, one fake clock."""
    await prepare(database)
    clock = FakeClock()
    sim = Simulator(World.default(), clock=clock)
    yield Env(database, clock, sim)

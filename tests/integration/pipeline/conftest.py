"""An in-process world for pipeline tests: real PostgreSQL, the simulator over httpx's
ASGI transport, one fake clock shared by daemon and simulator, and no sleeping.

Each side acts as the role it has in a deployment, none of them a superuser:

- the application's own login role creates the schema ``app`` and the demo's tables, so
  owns them, writes every business row (``env.app_sql()``, ``env.submit_leave()``) and
  installs the capture triggers itself, with the three grants docs/security.md asks of a
  DBA for a role that runs ``capture add`` on its own tables. That is the deployment
  where the application keeps its tables: ``syncd_owner`` would need TRIGGER on each,
  CREATE on the schema for the condition functions and the ownership of the table to
  replace a trigger. It is a member of ``syncd_application`` too, as an application that
  also writes outbox rows itself (cancels, and the bad rows some tests make) is;
- as the tables' owner it gives ``syncd_daemon`` what a DBA gives it for the demo's
  write-backs: USAGE on ``app``, SELECT on the key column, UPDATE on the mapped columns
  (``env.grant_write_back()`` for a kind of a test's own);
- the daemon (``env.daemon()``, ``env.settings()``) logs in as ``syncd_daemon``.

``env.sql()`` is the superuser, for reading what happened and for arranging syncd's own
tables; it refuses to write the application's tables.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from syncd.app import App
from syncd.demo.config import KINDS
from syncd.demo.legacy_app import create_application
from syncd.dingtalk.pacing import MemoryPacer
from syncd.runner import Runner
from syncd.settings import Settings
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock
from tests.roles import APPLICATION, write_back_grants

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


#: A statement that changes the application's tables (or its schema).
_WRITES_APP = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|ALTER|CREATE|DROP)\s.*\bapp\.", re.I | re.S
)


#: A statement as psycopg takes it.
Query = str | sql.SQL | sql.Composed


def run_sql(dsn: str, query: Query, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


@dataclass
class Env:
    admin_dsn: str
    daemon_dsn: str
    app_dsn: str
    clock: FakeClock
    sim: Simulator

    def settings(self, **overrides: Any) -> Settings:
        """The daemon's settings, as ``syncd_daemon``."""
        return settings_for(self.daemon_dsn, **overrides)

    def daemon(self, settings: Settings | None = None, **kw: Any) -> Runner:
        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        pacer = MemoryPacer(clock=self.clock, rate=1000, sleep=sleep)
        transport = kw.pop("transport", None) or httpx.ASGITransport(app=self.sim.app)
        settings = settings or self.settings()
        return Runner(App(settings, clock=self.clock, transport=transport, pacer=pacer, **kw))

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """As the superuser: reading anything, arranging syncd's tables."""
        assert not _WRITES_APP.search(query), "the application writes its tables: env.app_sql()"
        return run_sql(self.admin_dsn, query, *params)

    def app_sql(self, query: Query, *params: Any) -> list[tuple[Any, ...]]:
        """As the application's role: its business rows and tables."""
        return run_sql(self.app_dsn, query, *params)

    def grant_write_back(self, kind: dict[str, Any]) -> None:
        """What the application's DBA grants the daemon for this kind's write-back."""
        self.app_sql(write_back_grants({"kind": kind}))

    def submit_leave(self, applicant: str = "u1", days: int = 2, reason: str = "rest") -> int:
        """A leave request as the demo's application writes it (the capture trigger fires)."""
        [(key,)] = self.app_sql(
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
async def env(database, daemon_dsn, application) -> AsyncIterator[Env]:
    """The demo's application tables and capture triggers, made by the application's
    role; the daemon's role; a simulator; one fake clock."""
    await create_application(application.dsn)
    grant = sql.SQL("GRANT {} TO {}")  # the DBA: it writes outbox rows itself too
    run_sql(database, grant.format(sql.Identifier(APPLICATION), sql.Identifier(application.role)))
    run_sql(application.dsn, write_back_grants(KINDS))
    clock = FakeClock()
    sim = Simulator(World.default(), clock=clock)
    yield Env(database, daemon_dsn, application.dsn, clock, sim)

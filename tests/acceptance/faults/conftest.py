"""Fixtures of the fault suite: a migrated database with the leave table, the simulator
served on loopback with per-test secrets, and a fleet of ``syncd run`` processes whose
logs are searched for those secrets when the test ends.

Roles as in a deployment (tests/roles.py): the application's role owns the leave table,
installs its capture and writes every business row (``app_dsn``; it is a member of
``syncd_application`` too, for the outbox rows some scenarios write themselves); the
daemons log in as ``syncd_daemon`` (``dsn``, with this test's password); the checks
read as the superuser (``admin_dsn``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncd.simulator import Simulator, serve
from tests.roles import APPLICATION, DAEMON

from .harness import (
    Fleet,
    Secrets,
    assert_no_secrets,
    build_world,
    prepare_business,
    write_config,
)


@dataclass
class FaultEnv:
    """One scenario's world: database, simulator, secrets and the daemons started."""

    dsn: str
    admin_dsn: str
    app_dsn: str
    sim: Simulator
    sim_url: str
    keys: Secrets
    tmp: Path
    pg: Any
    fleets: list[Fleet] = field(default_factory=list)

    def fleet(self, dsn: str | None = None, **config: Any) -> Fleet:
        """Daemons sharing one config file (``dsn`` defaults to the daemon role's)."""
        index = len(self.fleets) + 1
        path = write_config(
            self.tmp / f"syncd-{index}.toml",
            dsn=dsn or self.dsn,
            sim_url=self.sim_url,
            keys=self.keys,
            **config,
        )
        logs = self.tmp / f"logs-{index}"
        logs.mkdir()
        fleet = Fleet(path, logs)
        self.fleets.append(fleet)
        return fleet

    def log_text(self) -> str:
        return "\n".join(f.log_text() for f in self.fleets)


@pytest.fixture
async def fault_env(database, pg_server, tmp_path, logins, application) -> AsyncIterator[FaultEnv]:
    keys = Secrets()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(APPLICATION), sql.Identifier(application.role)
            )
        )
    await prepare_business(application.dsn)
    # The daemon's password: a real server checks it; the embedded one trusts local
    # connections, but it is in the DSN, so every scenario proves it never reaches a log.
    dsn = logins.new(database, "daemon", acts_as=DAEMON, password=keys.db_password)
    sim = Simulator(build_world(keys), time_scale=0.01)
    async with serve(sim) as server:
        env = FaultEnv(
            dsn,
            database,
            application.dsn,
            sim,
            server.base_url,
            keys,
            tmp_path,
            pg_server.embedded,
        )
        try:
            yield env
        finally:
            for fleet in env.fleets:
                await fleet.kill_all()
    # No secret in any log line of any daemon this test started.
    assert_no_secrets(env.log_text(), keys.all())

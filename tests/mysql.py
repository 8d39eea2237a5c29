"""A MySQL-family server for the tests, and a fresh database with its users per test.

``SYNCD_TEST_MYSQL`` picks the server: ``dsn`` (yours: ``SYNCD_TEST_MYSQL_DSN``, a
``mysql://`` URL of a user who may create databases and users and grant; setting the
DSN alone means this too), ``local`` (the default: ``mariadbd`` or ``mysqld`` from this
machine, started once per session in a temporary directory by
:class:`syncd.embedded_mysql.LocalMySQL`) or ``docker`` (testcontainers, image
``SYNCD_TEST_MYSQL_IMAGE``, default ``mariadb:10.11``; ``SYNCD_TEST_MYSQL_DOCKER=1``
means this too). The servers started here run with a time zone that is not UTC
(:data:`SERVER_TIME_ZONE`), so a session that relied on the server's would show. A
missing server is a test failure saying how to get one, never a skip.

Per test, :func:`mysql_database` makes a database (utf8mb4) and two users of its own:
the application's, which owns the database (all privileges on it), and syncd's, which
gets only the grants docs/mysql.md asks of a DBA (:mod:`syncd.db.mysql.grants`), given
by the test once the tables exist. Both are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncmy
import pytest
import sqlalchemy as sa
from asyncmy.cursors import DictCursor

from syncd.embedded_mysql import HOW_TO_GET_ONE, LocalMySQL

SERVER_TIME_ZONE = "+08:00"
CHOICES = ("dsn", "local", "docker")
_counter = itertools.count(1)
_thread = ThreadPoolExecutor(1, thread_name_prefix="mysql-test")


def _choice() -> str:
    if choice := os.environ.get("SYNCD_TEST_MYSQL"):
        return choice
    if os.environ.get("SYNCD_TEST_MYSQL_DSN"):
        return "dsn"
    return "docker" if os.environ.get("SYNCD_TEST_MYSQL_DOCKER") == "1" else "local"


def _how() -> str:
    return (
        f"{HOW_TO_GET_ONE}, or set SYNCD_TEST_MYSQL_DSN to a mysql:// URL of a server you "
        "own (a user who may create databases and users), or SYNCD_TEST_MYSQL_DOCKER=1 to "
        "use Docker"
    )


def start_server() -> Iterator[str]:
    """The administrator's ``mysql://`` URL of the session's server (no database)."""
    choice = _choice()
    if choice == "dsn":
        if not (dsn := os.environ.get("SYNCD_TEST_MYSQL_DSN")):
            pytest.fail("SYNCD_TEST_MYSQL=dsn needs SYNCD_TEST_MYSQL_DSN", pytrace=False)
        yield str(sa.make_url(dsn).set(database=""))
        return
    if choice == "docker":
        from testcontainers.community.mysql import MySqlContainer

        image = os.environ.get("SYNCD_TEST_MYSQL_IMAGE", "mariadb:10.11")
        container = MySqlContainer(image, username="root", password=secrets.token_hex(8))
        with container.with_command(f"--default-time-zone={SERVER_TIME_ZONE}"):
            yield container.get_connection_url().rsplit("/", 1)[0] + "/"
        return
    if choice != "local":
        pytest.fail(f"SYNCD_TEST_MYSQL={choice!r}: choose one of {', '.join(CHOICES)}")
    try:
        server = LocalMySQL(time_zone=SERVER_TIME_ZONE)
        server.start()
    except Exception as exc:
        pytest.fail(f"no MySQL or MariaDB server for the tests: {_how()}. Cause: {exc}")
    try:
        yield server.url()
    finally:
        server.close()


def mysql_run(url: str, statement: str, *params: Any) -> list[dict[str, Any]]:
    """One statement on ``url``'s database (autocommit), from any thread or event loop;
    its rows as dicts."""

    async def run() -> list[dict[str, Any]]:
        u = sa.make_url(url)
        conn = await asyncmy.connect(
            host=u.host,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            database=u.database or None,
            charset="utf8mb4",
            autocommit=True,
        )
        try:
            async with conn.cursor(DictCursor) as cursor:
                await cursor.execute(statement, params or None)
                return list(await cursor.fetchall()) if cursor.description else []
        finally:
            await conn.ensure_closed()

    return _thread.submit(asyncio.run, run()).result()


@dataclass(frozen=True)
class MySQLDb:
    """One test's database: the administrator's, the application's and syncd's URLs."""

    name: str
    admin: str
    app: str
    daemon: str
    daemon_account: str

    def grant(self, *statements: str) -> None:
        """GRANTs to syncd's user, as the DBA gives them."""
        for statement in statements:
            mysql_run(self.admin, statement)


def _with(url: str, database: str, user: str | None = None, password: str = "") -> str:
    u = sa.make_url(url).set(database=database)
    if user is not None:
        u = u.set(username=user, password=password)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[str]:
    yield from start_server()


@contextmanager
def new_database(server: str) -> Iterator[MySQLDb]:
    """A database with its two users on the server whose administrator's URL is
    ``server``; both dropped at the end."""
    n = next(_counter)
    name = f"syncd_t{os.getpid()}_{n}"
    app, daemon = f"st{os.getpid()}_{n}_app", f"st{os.getpid()}_{n}_syncd"
    app_password, daemon_password = secrets.token_hex(8), secrets.token_hex(8)
    mysql_run(server, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    for user, password in ((app, app_password), (daemon, daemon_password)):
        mysql_run(server, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    mysql_run(server, f"GRANT ALL ON `{name}`.* TO '{app}'@'%'")
    try:
        yield MySQLDb(
            name=name,
            admin=_with(server, name),
            app=_with(server, name, app, app_password),
            daemon=_with(server, name, daemon, daemon_password),
            daemon_account=f"'{daemon}'@'%'",
        )
    finally:
        mysql_run(server, f"DROP DATABASE IF EXISTS `{name}`")
        for user in (app, daemon):
            mysql_run(server, f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture
def mysql_database(mysql_server: str) -> Iterator[MySQLDb]:
    with new_database(mysql_server) as db:
        yield db

"""Connections to a business database: a SQLAlchemy ``AsyncEngine`` over asyncmy.

Every session syncd opens is set up the same way, whatever the server's defaults:
``utf8mb4`` (Chinese text and emoji round-trip), ``time_zone`` the configured offset
(UTC unless ``[databases.<name>] time_zone`` says otherwise), ``sql_mode`` TRADITIONAL
(a value a column cannot hold is an error, never silently cut), READ COMMITTED, and
``innodb_lock_wait_timeout`` the configured lock timeout. Driver errors become
syncd's, with passwords masked.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any, LiteralString

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from syncd.db.connect import redact
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.queries import parse_queries, sql_dir
from syncd.errors import StoreError


def driver_url(dsn: str) -> sa.URL:
    """The DSN as SQLAlchemy's ``mysql+asyncmy`` URL, utf8mb4."""
    url = sa.make_url(dsn)
    query = {**url.query, "charset": "utf8mb4"}
    return url.set(drivername="mysql+asyncmy", query=query)


def session_setup(database: MySQLDatabase) -> str:
    """The statement every new session of syncd's runs first. ``@syncd_writing_back``
    marks everything the session writes as syncd's: capture triggers skip it (syncd's
    sessions write nothing but write-backs into business tables)."""
    return (
        f"SET time_zone = '{database.time_zone}', sql_mode = 'TRADITIONAL', "
        f"innodb_lock_wait_timeout = {int(database.lock_timeout)}, @syncd_writing_back = 1"
    )


def create_engine(database: MySQLDatabase) -> AsyncEngine:
    return create_async_engine(
        driver_url(database.dsn),
        pool_size=database.pool_max_size,
        max_overflow=0,
        pool_timeout=database.connect_timeout,
        pool_pre_ping=True,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": database.connect_timeout,
            "read_timeout": database.statement_timeout,
            "init_command": session_setup(database),
        },
    )


def describe(exc: BaseException) -> str:
    """A driver error: MySQL's message (and its number), passwords masked."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        text = f"{args[1]} (MySQL error {args[0]})"
    else:
        text = str(orig) or type(orig).__name__
    return redact(text.strip())


@cache
def _load() -> dict[str, LiteralString]:
    return parse_queries((sql_dir() / "mysql" / "queries.sql").read_text(encoding="utf-8"))


@cache
def query(name: str) -> sa.TextClause:
    """The statement under ``-- name --`` in sql/mysql/queries.sql."""
    try:
        return sa.text(_load()[name])
    except KeyError:
        raise KeyError(f"no query named {name!r} in mysql/queries.sql") from None


async def run_one(
    engine: AsyncEngine, seconds: float, statement: sa.Executable, params: dict[str, Any], what: str
) -> Any:
    """One statement in a transaction of its own: its rows, or the rows it changed.
    A failure, or taking over ``seconds``, raises ``StoreError`` naming ``what``."""
    try:
        async with asyncio.timeout(seconds), engine.begin() as conn:
            result = await conn.execute(statement, params)
            return result.fetchall() if result.returns_rows else result.rowcount
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else describe(exc)
        raise StoreError(f"{what}: {why}") from exc

"""Forward-only migrations of syncd's footprint in a business database, from
``sql/mysql/migrations/NNNN_name.sql``.

As for syncd's own schema (:mod:`syncd.db.migrations`): applied in order, each recorded
in ``syncd_schema_migrations`` with its checksum, an applied file that changed is an
error, and runs are serialised, here by ``GET_LOCK`` on a name made of the database's.
MySQL commits DDL as it goes, so a migration is a list of statements, each safe to run
again; one that fails stops the run with the statement's number and MySQL's message,
and the migration is recorded only once all of it ran. A file is split into statements
as the ``mysql`` client does (``;`` at a line's end, ``DELIMITER`` lines for bodies),
so a DBA can also feed it to the client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from syncd.db.migrations import Migration, Status, compare, load_migrations
from syncd.db.mysql.engine import create_engine, describe, query
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.queries import sql_dir
from syncd.errors import MigrationError, StoreError

logger = logging.getLogger(__name__)

#: Seconds a run waits for another run's lock before giving up.
LOCK_WAIT = 60
_DELIMITER = re.compile(r"^DELIMITER\s+(\S+)\s*$", re.IGNORECASE)


def migrations_dir() -> Path:
    return sql_dir() / "mysql" / "migrations"


def load() -> list[Migration]:
    return load_migrations(migrations_dir())


def split_statements(text: str) -> list[str]:
    """The statements of a SQL file, as the ``mysql`` client splits them."""
    statements: list[str] = []
    delimiter, lines = ";", list[str]()
    for line in text.splitlines():
        stripped = line.strip()
        if not lines and (not stripped or stripped.startswith("--")):
            continue
        if match := _DELIMITER.match(stripped):
            delimiter = match[1]
            continue
        lines.append(line)
        if stripped.endswith(delimiter):
            body = "\n".join(lines).rstrip()
            statements.append(body[: -len(delimiter)].rstrip())
            lines = []
    if "\n".join(lines).strip():
        statements.append("\n".join(lines).strip())
    return statements


async def _applied(conn: AsyncConnection) -> dict[int, str]:
    present = (await conn.execute(query("version_table_exists"))).scalar_one()
    if not present:
        return {}
    rows = (await conn.execute(query("select_versions"))).all()
    return {int(r.version): str(r.checksum) for r in rows}


async def status(engine: AsyncEngine, name: str) -> Status:
    """Which migrations the database ``name`` has and which are pending (creates nothing)."""
    try:
        async with engine.connect() as conn:
            return compare(load(), await _applied(conn))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot read business database {name}: {describe(exc)}") from exc


async def apply(engine: AsyncEngine, name: str) -> list[Migration]:
    """Apply the pending migrations in order; returns those applied (empty when current)."""
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            locked = (
                await conn.execute(query("get_migrate_lock"), {"timeout": LOCK_WAIT})
            ).scalar()
            if locked != 1:
                raise MigrationError(
                    f"business database {name}: another `syncd migrate` has held the "
                    f"migration lock for {LOCK_WAIT} s; try again when it has finished"
                )
            try:
                await conn.execute(query("create_version_table"))
                state = compare(load(), await _applied(conn))
                for migration in state.pending:
                    await _apply_one(conn, name, migration)
                return state.pending
            finally:
                await conn.execute(query("release_migrate_lock"))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate business database {name}: {describe(exc)}") from exc


async def _apply_one(conn: AsyncConnection, name: str, migration: Migration) -> None:
    for number, statement in enumerate(split_statements(migration.sql), start=1):
        try:
            await conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            first = statement.strip().splitlines()[0][:80]
            raise MigrationError(
                f"business database {name}: migration {migration.label} failed at statement "
                f"{number} ({first} …): {describe(exc)}. MySQL cannot roll DDL back: the "
                "statements before it stay; fix the cause and run `syncd migrate` again"
            ) from exc
    params = {"version": migration.version, "name": migration.name, "checksum": migration.checksum}
    await conn.execute(query("insert_version"), params)
    logger.info(
        "migration applied",
        extra={"action": "migration_applied", "migration": migration.label, "database": name},
    )


@asynccontextmanager
async def opened(database: MySQLDatabase) -> AsyncIterator[AsyncEngine]:
    """An engine on the business database, disposed of at the end."""
    engine = create_engine(database)
    try:
        yield engine
    finally:
        await engine.dispose()

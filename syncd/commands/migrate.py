"""``syncd migrate``: apply, preview or check the database schema (syncd's own, or its
footprint in a business database with ``--database``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from syncd.commands.common import business_database, database_dsn, out
from syncd.db import migrations
from syncd.db.mysql.url import MySQLDatabase, require_driver
from syncd.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply pending migrations to the syncd schema (or, with --database, to "
        "syncd's tables in a business database). Safe to run from several replicas at "
        "once; does nothing when the schema is current.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the SQL it would run")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if migrations are pending, 0 if current"
    )
    parser.add_argument(
        "--dsn", help="database to migrate (default: database.dsn, or the --database's dsn)"
    )
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="migrate syncd's tables in the business database [databases.NAME] "
        "(MySQL/MariaDB; see docs/mysql.md)",
    )
    parser.add_argument(
        "--grants",
        nargs="?",
        const="",
        metavar="FILE",
        help="then apply the least-privilege grants (default FILE: the shipped "
        "deploy/sql/least_privilege.sql), as the schema's owner",
    )
    parser.set_defaults(handler=run)


def _grants(args: argparse.Namespace) -> Path | None:
    if args.grants is None:
        return None
    return Path(args.grants) if args.grants else migrations.default_grants()


def _report(args: argparse.Namespace, state: migrations.Status) -> int:
    """``--check`` or ``--dry-run``'s output for ``state``; the exit code."""
    if args.check:
        applied = ", ".join(f"{v:04d}" for v in state.applied) or "none"
        pending = ", ".join(m.label for m in state.pending) or "none"
        out(f"applied: {applied}\npending: {pending}")
        return 0 if state.current else 1
    for migration in state.pending:
        out(f"-- migration {migration.label}\n{migration.sql.rstrip()}\n")
    if state.current:
        out("-- the schema is current; nothing to run")
    return 0


def _applied(done: list[migrations.Migration]) -> None:
    for migration in done:
        out(f"applied {migration.label}")
    if not done:
        out("the schema is current")


async def run(args: argparse.Namespace) -> int:
    if args.database:
        return await _business(args)
    dsn = database_dsn(args)
    grants = _grants(args)
    if args.dry_run or args.check:
        code = _report(args, await migrations.status(dsn))
        if args.dry_run and grants is not None:
            out(f"-- grants from {grants}\n{migrations.read_grants(grants).rstrip()}\n")
        return code
    _applied(await migrations.apply(dsn, grants=grants))
    if grants is not None:
        out(f"applied the grants in {grants}")
    return 0


def _business_database(args: argparse.Namespace) -> MySQLDatabase:
    if args.grants is not None:
        raise ConfigError(
            "--grants is for syncd's own PostgreSQL; a business database's grants are in "
            "docs/mysql.md (give them as its DBA after migrating)"
        )
    return business_database(args)


async def _business(args: argparse.Namespace) -> int:
    database = _business_database(args)
    require_driver()
    from syncd.db.mysql import migrations as business

    async with business.opened(database) as engine:
        if args.dry_run or args.check:
            return _report(args, await business.status(engine, database.name))
        _applied(await business.apply(engine, database.name))
    return 0

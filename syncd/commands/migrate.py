"""``syncd migrate``: apply, preview or check the database schema."""

from __future__ import annotations

import argparse
from pathlib import Path

from syncd.commands.common import database_dsn, out
from syncd.db import migrations


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply pending migrations to the syncd schema. Safe to run from several "
        "replicas at once; does nothing when the schema is current.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the SQL it would run")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if migrations are pending, 0 if current"
    )
    parser.add_argument("--dsn", help="database to migrate (default: database.dsn)")
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


async def run(args: argparse.Namespace) -> int:
    dsn = database_dsn(args)
    grants = _grants(args)
    if args.dry_run or args.check:
        state = await migrations.status(dsn)
        if args.check:
            applied = ", ".join(f"{v:04d}" for v in state.applied) or "none"
            pending = ", ".join(m.label for m in state.pending) or "none"
            out(f"applied: {applied}\npending: {pending}")
            return 0 if state.current else 1
        for migration in state.pending:
            out(f"-- migration {migration.label}\n{migration.sql.rstrip()}\n")
        if state.current:
            out("-- the schema is current; nothing to run")
        if grants is not None:
            out(f"-- grants from {grants}\n{migrations.read_grants(grants).rstrip()}\n")
        return 0
    done = await migrations.apply(dsn, grants=grants)
    for migration in done:
        out(f"applied {migration.label}")
    if not done:
        out("the schema is current")
    if grants is not None:
        out(f"applied the grants in {grants}")
    return 0

"""``syncd capture``: install, review, list and remove capture triggers."""

from __future__ import annotations

import argparse
import difflib
import logging
import re

from syncd.commands import capture_mysql
from syncd.commands.common import database_dsn, out, settings_from
from syncd.db import capture
from syncd.db.connect import connect
from syncd.errors import CaptureError, ConfigError
from syncd.settings import KIND_NAME

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "capture",
        help="capture business-table changes into the outbox",
        description="Manage triggers that turn business-table changes into outbox rows.",
    )
    actions = parser.add_subparsers(dest="capture_action", required=True, metavar="ACTION")
    for name, help_text in (
        ("add", "install (or replace) a capture trigger"),
        ("sql", "print the DDL that 'add' would run, for review; changes nothing"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        _target_options(action)
        action.add_argument("--key", required=True, help="column holding the business key")
        action.add_argument(
            "--when", help="SQL condition on NEW that submits, e.g. \"NEW.status = 'submitted'\""
        )
        action.add_argument("--cancel-when", help="SQL condition on NEW that cancels")
        action.set_defaults(handler=run_add if name == "add" else run_sql)
        if name == "add":
            action.add_argument(
                "--force",
                action="store_true",
                help="install even if --kind is not a kind of the configuration (--config)",
            )
    remove = actions.add_parser("remove", help="remove a capture trigger")
    _target_options(remove)
    remove.set_defaults(handler=run_remove)
    listing = actions.add_parser("list", help="list installed capture triggers")
    listing.add_argument("--dsn", help="database (default: database.dsn)")
    _database_option(listing)
    listing.set_defaults(handler=run_list)


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, help="approval kind ([kinds.<name>])")
    parser.add_argument("--table", required=True, help="business table, e.g. app.leave_request")
    parser.add_argument("--dsn", help="database (default: database.dsn)")
    _database_option(parser)


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="the MySQL/MariaDB business database [databases.NAME] (default: syncd's own "
        "PostgreSQL); --dsn then names a mysql:// URL",
    )


def _spec(args: argparse.Namespace, *, refuse_unknown: bool) -> capture.CaptureSpec:
    if not re.match(KIND_NAME, args.kind):
        raise ConfigError(
            f"--kind {args.kind!r}: use lower-case letters, digits and _ (max 40), "
            "the same name as [kinds.<name>] in the config"
        )
    _check_kind(args, refuse=refuse_unknown and not args.force)
    return capture.CaptureSpec(args.kind, args.table, args.key, args.when, args.cancel_when)


def _check_kind(args: argparse.Namespace, *, refuse: bool) -> None:
    """A kind the configuration does not have would park every captured row as
    ``unknown_kind``: refused (``capture add`` without ``--force``) or warned about."""
    kinds = settings_from(args).kinds
    if args.kind in kinds:
        return
    extra = {"action": "capture_kind_unknown", "kind": args.kind}
    if not kinds:
        logger.warning(
            "no kinds are configured (is --config or SYNCD_CONFIG set?): cannot check that "
            "--kind %r is one",
            args.kind,
            extra=extra,
        )
        return
    close = difflib.get_close_matches(args.kind, kinds, n=1)
    problem = (
        f"--kind {args.kind!r} is not a kind of the configuration (it has "
        f"{', '.join(sorted(kinds))}){f'; did you mean {close[0]!r}?' if close else ''}: "
        "the daemon would park every row this trigger captures as unknown_kind"
    )
    if refuse:
        raise ConfigError(f"{problem}; --force installs it anyway (a kind configured later)")
    logger.warning("%s", problem, extra=extra)


async def run_add(args: argparse.Namespace) -> int:
    spec = _spec(args, refuse_unknown=True)
    if args.database:
        return await capture_mysql.run(args, "add")
    async with connect(database_dsn(args)) as conn:
        await capture.install(conn, spec)
    out(f"capture trigger {capture.trigger_name(spec.kind)} installed on {spec.table}")
    return 0


async def run_sql(args: argparse.Namespace) -> int:
    spec = _spec(args, refuse_unknown=False)
    if args.database:
        return await capture_mysql.run(args, "sql")
    async with connect(database_dsn(args)) as conn:
        _, ddl = await capture.plan(conn, spec)
        await conn.rollback()
    out(ddl)
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    if args.database:
        return await capture_mysql.run(args, "remove")
    async with connect(database_dsn(args)) as conn:
        await capture.remove(conn, args.kind, args.table)
    out(f"capture trigger {capture.trigger_name(args.kind)} removed from {args.table}")
    return 0


async def run_list(args: argparse.Namespace) -> int:
    if args.database:
        return await capture_mysql.run(args, "list")
    async with connect(database_dsn(args)) as conn:
        rows = await capture.list_captures(conn)
        try:
            await capture.check_capture_role(conn)
            unsafe = ""
        except CaptureError as exc:
            unsafe = str(exc)
    if not rows:
        out("no capture triggers installed")
    for row in rows:
        state = "" if row["present"] else "  (TRIGGER MISSING: re-run capture add)"
        if row["legacy"]:
            state = "  (LEGACY: runs as the role that installed it; re-run capture add)"
        out(
            f"{row['kind']}: {row['table_schema']}.{row['table_name']} key={row['key_column']}"
            f" when={row['when_sql'] or 'on insert'}"
            + (f" cancel_when={row['cancel_sql']}" if row["cancel_sql"] else "")
            + state
        )
    if rows and unsafe:
        out(f"WARNING: {unsafe}")
    return 0

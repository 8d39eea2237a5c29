"""What every command shares: loading settings and finding the database."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from syncd.db.connect import passwords
from syncd.db.mysql.url import MySQLDatabase, check_dsn
from syncd.errors import ConfigError
from syncd.logging import add_secrets
from syncd.settings import Settings, config_path, load_settings

logger = logging.getLogger(__name__)


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(getattr(args, "config", None)))


def database_dsn(args: argparse.Namespace) -> str:
    """``--dsn`` if given, else ``database.dsn`` from the configuration."""
    if getattr(args, "dsn", None):
        return command_line_dsn(str(args.dsn))
    dsn = settings_from(args).database.dsn.get_secret_value()
    if not dsn:
        raise ConfigError(
            "database.dsn is not set: put it in the config file ([database] dsn = ...), "
            "set SYNCD_DATABASE__DSN, or pass --dsn"
        )
    return dsn


def out(text: str) -> None:
    """Command output (results for the user) goes to stdout; logs go to stderr."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def command_line_dsn(dsn: str) -> str:
    """A DSN given as ``--dsn``: its password is masked in the logs, and a warning says
    that every user of the machine can read it in the process list."""
    found = passwords(dsn)
    if found:
        add_secrets([dsn, *found])
        logger.warning(
            "--dsn carries a password, which every user of this machine can read in the "
            "process list: give the DSN in a file (database.dsn_file, "
            "SYNCD_DATABASE__DSN_FILE) or the environment (SYNCD_DATABASE__DSN, or "
            "PGPASSWORD / ~/.pgpass with a password-less --dsn) instead",
            extra={"action": "dsn_password_argument"},
        )
    return dsn


# --- business databases (syncd migrate/capture --database) ---------------------------


def business_database(args: argparse.Namespace) -> MySQLDatabase:
    """``[databases.<--database>]``, its DSN replaced by ``--dsn`` when given (a DBA's)."""
    name = str(args.database)
    databases = settings_from(args).databases
    if args.dsn:
        try:
            dsn = check_dsn(command_line_dsn(str(args.dsn)))
        except ValueError as exc:
            raise ConfigError(f"--dsn {exc}") from None
        base = databases[name].plain(name) if name in databases else MySQLDatabase(name, dsn)
        return replace(base, dsn=dsn)
    if name not in databases:
        declared = ", ".join(sorted(databases)) or "none"
        raise ConfigError(
            f"--database {name}: no [databases.{name}] in the configuration (declared: "
            f"{declared}); add it, or give the server with --dsn mysql://…"
        )
    return databases[name].plain(name)

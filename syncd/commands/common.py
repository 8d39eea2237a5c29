"""What every command shares: loading settings and finding the database."""

from __future__ import annotations

import argparse
import sys

from syncd.errors import ConfigError
from syncd.settings import Settings, config_path, load_settings


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(getattr(args, "config", None)))


def database_dsn(args: argparse.Namespace) -> str:
    """``--dsn`` if given, else ``database.dsn`` from the configuration."""
    if getattr(args, "dsn", None):
        return str(args.dsn)
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

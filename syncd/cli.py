"""The ``syncd`` command line. Exit codes: 0 ok, 1 failed, 2 usage or configuration,
141 the reader of the output went away (``syncd ... | head``), 130 interrupted."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from syncd import __version__
from syncd.commands import (
    backfill,
    capture,
    check,
    config,
    demo,
    devdb,
    directory,
    migrate,
    ops,
    reconcile,
    repair,
    run,
)
from syncd.commands import report as report_command
from syncd.errors import CaptureError, ConfigError, SyncdError
from syncd.logging import setup_logging

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

#: The exit code when stdout is a pipe whose reader has gone: what a shell reports for a
#: program killed by SIGPIPE (128 + 13), as ``yes | head -1`` does.
EXIT_BROKEN_PIPE = 141
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The options every command takes, before or after the command's name.
GLOBAL_OPTIONS = ("config", "log_format", "log_level")


class _Parser(argparse.ArgumentParser):
    """argparse, except that a failed write of help or usage is not ignored: a closed
    pipe ends ``syncd --help | head -1`` like any other command (exit 141)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if message:
            (file or sys.stderr).write(message)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="syncd",
        description="Connects your own database to DingTalk approvals.",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate.add_parser(sub)
    capture.add_parser(sub)
    config.add_parser(sub)
    run.add_parser(sub)
    check.add_parser(sub)
    ops.add_parser(sub)
    repair.add_parser(sub)
    reconcile.add_parser(sub)
    report_command.add_parser(sub)
    directory.add_parser(sub)
    backfill.add_parser(sub)
    demo.add_parser(sub)
    devdb.add_parser(sub)
    _add_simulator(sub)
    _add_global_options(parser)
    return parser


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """The global options on ``parser`` and on every (sub)command under it, so that they
    are accepted before and after a command's name. None has a default (SUPPRESS): a
    command's parser sets only what was given after its name, and never overwrites with
    a default what was given before it."""
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML file (or SYNCD_CONFIG)"
    )
    group.add_argument(
        "--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS, help="default: [log]"
    )
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="default: [log] level (INFO)",
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in {id(p): p for p in action.choices.values()}.values():
                _add_global_options(child)


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        simulator_cli = importlib.import_module("syncd.simulator.cli")
    except ImportError:
        return
    parser = simulator_cli.add_parser(sub)
    parser.set_defaults(sync_handler=simulator_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. A closed pipe on stdout ends it quietly."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # Whatever is still buffered would fail again at exit, with a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    for name in GLOBAL_OPTIONS:
        setattr(args, name, getattr(args, name, None))
    setup_logging(args.log_level or "INFO", args.log_format or "auto")
    handler: Handler | None = getattr(args, "handler", None)
    sync_handler: Callable[[argparse.Namespace], int] | None = getattr(args, "sync_handler", None)
    try:
        if sync_handler is not None:
            return sync_handler(args)
        if handler is None:
            parser.print_help()
            return 2
        return asyncio.run(handler(args))
    except (ConfigError, CaptureError) as exc:
        sys.stderr.write(f"syncd: {exc}\n")
        return 2
    except SyncdError as exc:
        sys.stderr.write(f"syncd: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130

"""The ``syncd`` command line. Exit codes: 0 ok, 1 failed, 2 usage or configuration."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from syncd import __version__
from syncd.commands import capture, check, config, demo, migrate, ops, reconcile, repair, run
from syncd.commands import report as report_command
from syncd.errors import CaptureError, ConfigError, SyncdError
from syncd.logging import setup_logging

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Connects your own database to DingTalk approvals.",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (or SYNCD_CONFIG)")
    parser.add_argument(
        "--log-format", choices=["auto", "json", "text"], default=None, help="default: [log]"
    )
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
    demo.add_parser(sub)
    _add_simulator(sub)
    return parser


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        simulator_cli = importlib.import_module("syncd.simulator.cli")
    except ImportError:
        return
    parser = simulator_cli.add_parser(sub)
    parser.set_defaults(sync_handler=simulator_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(fmt=args.log_format or "auto")
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

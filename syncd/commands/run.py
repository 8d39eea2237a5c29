"""``syncd run``: the daemon, until SIGTERM/SIGINT or, with ``--once``, until drained."""

from __future__ import annotations

import argparse
import asyncio
import json

from prometheus_client import CollectorRegistry

from syncd.app import App
from syncd.commands.common import out, settings_from
from syncd.db import migrations
from syncd.logging import setup_logging
from syncd.runner import Runner
from syncd.signals import stop_on_signals


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon until SIGTERM or SIGINT (in-flight work finishes first).",
    )
    parser.add_argument(
        "--once", action="store_true", help="work until nothing is left to do, print a summary"
    )
    parser.add_argument(
        "--migrate", action="store_true", help="apply pending migrations before starting"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    setup_logging(
        args.log_level or settings.log.level,
        args.log_format or settings.log.format,
        secrets=settings.secrets,
    )
    if args.migrate:
        await migrations.apply(settings.database.dsn.get_secret_value())
    # The daemon's own registry (never the global one): the pipeline's counters, the
    # DingTalk client's requests and the gauges computed at scrape time, on /metrics.
    registry = CollectorRegistry()
    async with Runner(App(settings, registry=registry)) as runner:
        if args.once:
            summary = await runner.drain()
            out(json.dumps({"handled": summary.handled, "cycles": summary.cycles}))
            return 0
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await runner.run(stop)
    return 0

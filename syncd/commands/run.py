"""``syncd run``: the daemon, until SIGTERM/SIGINT or, with ``--once``, until drained."""

from __future__ import annotations

import argparse
import asyncio
import json

from prometheus_client import CollectorRegistry

from syncd.app import App
from syncd.commands.common import out, settings_from
from syncd.logging import setup_logging
from syncd.runner import Runner, StartWait
from syncd.signals import stop_on_signals


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon until SIGTERM or SIGINT (in-flight work finishes first). "
        "While the database cannot be reached at start, it serves /healthz and /readyz "
        "(unready: database unreachable) and tries again with backoff, logging each "
        "attempt; a DSN that does not parse or a login PostgreSQL refuses exit 2 at once.",
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
    # The daemon's own registry (never the global one): the pipeline's counters, the
    # DingTalk client's requests and the gauges computed at scrape time, on /metrics.
    app = App(settings, registry=CollectorRegistry())
    if args.once:
        async with Runner(app, migrate=args.migrate) as runner:
            summary = await runner.drain()
        out(json.dumps({"handled": summary.handled, "cycles": summary.cycles}))
        return 0
    stop = asyncio.Event()
    with stop_on_signals(stop):  # also while it waits for the database
        async with Runner(app, wait=StartWait(stop), migrate=args.migrate) as runner:
            await runner.run(stop)
    return 0

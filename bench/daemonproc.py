"""``syncd run`` for benchmarks, optionally without syncd's own pacing.

``python -m bench.daemonproc CONFIG [--unpaced]`` is ``syncd --config CONFIG run`` (JSON
logs at the configured level), except that with ``--unpaced`` the shared PostgreSQL
pacer hands out slots at 1,000,000 calls per second instead of at most 20: the
throughput benchmark measures syncd's pipeline, not DingTalk's rate limit. The pacer
still takes its database round trip per call, as in production. Prints ``ready`` once
the daemon is open. For bench.httpclient, ``SYNCD_BENCH_LOOP=uvloop`` runs it on uvloop
and ``SYNCD_BENCH_TRANSPORT=httpcore`` sends its DingTalk calls on httpx's own transport
instead of syncd's default (aiohttp).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from syncd.app import App
from syncd.db.pacing import PostgresPacer
from syncd.dingtalk.client import KEEPALIVE_EXPIRY
from syncd.dingtalk.pacing import Pacer
from syncd.logging import setup_logging
from syncd.runner import Runner
from syncd.settings import load_settings
from syncd.signals import stop_on_signals

UNPACED_RATE = 1_000_000.0


LOOP = "SYNCD_BENCH_LOOP"
TRANSPORT = "SYNCD_BENCH_TRANSPORT"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get(LOOP) == "uvloop":
        import uvloop  # the bench extra; not in CI's environment, hence no stubs there

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def transport() -> httpx.AsyncBaseTransport | None:
    if os.environ.get(TRANSPORT) == "httpcore":
        return httpx.AsyncHTTPTransport(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY))
    return None


class UnpacedApp(App):
    def _pacer(self) -> Pacer:
        # No limit to keep under: a call waking late never takes a new slot.
        return PostgresPacer(self.pool, clock=self.clock, rate=UNPACED_RATE, margin=1.0, late=1.0)


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(Path(args.config))
    setup_logging(settings.log.level, "json", secrets=settings.secrets)
    kind = UnpacedApp if args.unpaced else App
    app = kind(settings, registry=CollectorRegistry(), transport=transport())
    async with Runner(app) as runner:
        print("ready", flush=True)  # noqa: T201 - the parent waits for this line
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await runner.run(stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--unpaced", action="store_true")
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(arguments))

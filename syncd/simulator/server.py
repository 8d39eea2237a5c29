"""Serve the simulator over real HTTP and WebSocket (uvicorn), on a chosen or free port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from syncd import http
from syncd.simulator.core import Simulator
from syncd.simulator.responses import ConnectionDropped


class _QuietDrops(logging.Filter):
    """Hide the tracebacks of connections the simulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


@dataclass
class RunningServer:
    host: str
    port: int
    sim: Simulator
    task: asyncio.Task[None]

    async def wait(self) -> None:
        """Return when the server stops (e.g. on Ctrl-C or SIGTERM)."""
        await asyncio.shield(self.task)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/connect"


@contextlib.asynccontextmanager
async def serve(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> AsyncIterator[RunningServer]:
    """Run the simulator's app on ``host:port`` (0 = any free port) until the block ends."""
    quiet = _QuietDrops()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        async with http.serve(sim.app, host, port, log_level=log_level) as listening:
            async with sim.running():
                yield RunningServer(host, listening.port, sim, listening.task)
                await sim.stream.close_all()
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)

"""Serve the simulator over real HTTP and WebSocket (uvicorn), on a chosen or free port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from syncd.simulator.core import Simulator
from syncd.simulator.responses import ConnectionDropped


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def serve(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> AsyncIterator[RunningServer]:
    """Run the simulator's app on ``host:port`` (0 = any free port) until the block ends."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        sim.app, lifespan="off", ws="websockets-sansio", log_level=log_level, access_log=False
    )
    server = _Server(config)
    quiet = _QuietDrops()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await task
            raise OSError(f"simulator could not listen on {host}:{port}")
        async with sim.running():
            yield RunningServer(host, sock.getsockname()[1], sim, task)
            await sim.stream.close_all()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        sock.close()

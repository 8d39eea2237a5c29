"""Serving a starlette app with uvicorn inside our own event loop.

The daemon serves its callback endpoint, health checks and metrics this way; the
simulator serves DingTalk's API. The server binds the socket itself (port 0 picks a free
port, reported back), never installs signal handlers (the owner decides how to stop),
and stops when the ``async with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # they are TCP. With Nagle on, a response's body waits for the client's delayed ACK
    # of its headers: 40 ms added to every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> AsyncIterator[Listening]:
    """Serve ``app`` on ``host:port`` until the block ends; ``OSError`` if it cannot listen."""
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="websockets-sansio",
        log_level=log_level,
        access_log=False,
        log_config=None,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await task
            raise OSError(f"cannot listen on {host}:{port}")
        yield Listening(host, sock.getsockname()[1], task)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()

"""The HTTP server's socket: answers must not wait on Nagle's algorithm."""

from __future__ import annotations

import asyncio
import socket

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncd.http import bind, serve


async def test_accepted_connections_have_nagle_turned_off() -> None:
    """With Nagle on, a response's body waits 40 ms for the ACK of its headers."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    sock = bind("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    async with server:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await accepted == 1
        writer.close()


async def test_serve_answers_on_the_port_it_bound() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    async with serve(app, "127.0.0.1", 0) as listening, httpx.AsyncClient() as client:
        response = await client.post(f"{listening.base_url}/echo", json={"a": 1})
    assert response.json() == {"a": 1} and listening.port > 0

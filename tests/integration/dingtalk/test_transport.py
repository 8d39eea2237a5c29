"""The client on its default transport (aiohttp behind httpx) over real loopback HTTP
against the simulator: a create, timeouts before and after sending, a refused
connection, a connection closed after the request was read, keep-alive reuse and
expiry, proxies from the environment. Each failed create is checked to be called "not
sent" (transient) or "outcome unknown" as it must."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from syncd.dingtalk import endpoints
from syncd.dingtalk.client import KEEPALIVE_EXPIRY, HttpxApprovalClient, build_http_client
from syncd.dingtalk.transport import PROXY_VARIABLES, DingTalkTransport
from syncd.errors import DingTalkOutcomeUnknown, DingTalkTransient
from syncd.http import serve as http_serve

from .conftest import APP_KEY, APP_SECRET, LEAVE, SimEnv


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class Peers:
    """The simulator's app, noting the client port of every request (one per connection)
    and when a create has arrived."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ports: list[int] = []
        self.create_arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.ports.append(scope["client"][1])
            if scope["path"] == endpoints.CREATE.path and scope["method"] == "POST":
                self.create_arrived.set()
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def served(env: SimEnv) -> AsyncIterator[tuple[str, Peers]]:
    peers = Peers(env.sim.app)
    async with http_serve(peers) as listening, env.sim.running():
        yield listening.base_url, peers


def client_for(env: SimEnv, url: str, **kw: Any) -> HttpxApprovalClient:
    http = build_http_client(APP_KEY, APP_SECRET, base_url=url, clock=env.clock, **kw)
    env.opened.append(http)
    return HttpxApprovalClient(http, pacer=env.pacer, clock=env.clock)


async def test_a_create_over_loopback_on_the_aiohttp_transport(env: SimEnv) -> None:
    async with served(env) as (url, _):
        client = client_for(env, url)
        instance_id = await client.create_instance(LEAVE)
    assert isinstance(env.opened[0]._transport, DingTalkTransport)
    assert [i.instance_id for i in env.sim.instances()] == [instance_id]


async def test_sequential_calls_reuse_one_connection(env: SimEnv) -> None:
    async with served(env) as (url, peers):
        client = client_for(env, url)
        for _ in range(5):
            await client.create_instance(LEAVE)
    assert len(peers.ports) == 6  # the token, then five creates
    assert len(set(peers.ports)) == 1


@pytest.mark.slow
async def test_an_idle_connection_is_dropped_after_the_keepalive_expiry(env: SimEnv) -> None:
    transport = DingTalkTransport(httpx.Limits(keepalive_expiry=0.2))
    async with served(env) as (url, peers):
        client = client_for(env, url, transport=transport)
        await client.create_instance(LEAVE)
        await asyncio.sleep(0.6)  # idle past the expiry: what is measured, not a sync
        await client.create_instance(LEAVE)
    assert len(set(peers.ports)) == 2
    assert KEEPALIVE_EXPIRY < 5  # before a server that closes idle connections at 5 s


@pytest.mark.slow
async def test_a_read_timeout_after_sending_a_create_is_outcome_unknown(env: SimEnv) -> None:
    async with served(env) as (url, _):
        client = client_for(env, url, timeout=0.2)
        await client.get_form_schema("PROC-SIM-LEAVE")  # the token first
        env.sim.faults.update(latency={"mean_ms": 600}, endpoints=["workflow.create"])
        with pytest.raises(DingTalkOutcomeUnknown) as caught:
            await client.create_instance(LEAVE)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert env.sim.calls["workflow.create"] == 1


@pytest.mark.slow
async def test_a_pool_timeout_before_sending_a_create_is_not_sent(env: SimEnv) -> None:
    """One connection, held by a slow create: the next create times out waiting for it."""
    transport = DingTalkTransport(httpx.Limits(max_connections=1, keepalive_expiry=4))
    async with served(env) as (url, peers):
        slow = client_for(env, url, transport=transport, timeout=5)
        hasty = client_for(env, url, transport=transport, timeout=0.2)
        for client in (slow, hasty):
            await client.get_form_schema("PROC-SIM-LEAVE")  # their tokens first
        env.sim.faults.update(latency={"mean_ms": 800}, endpoints=["workflow.create"])
        holding = asyncio.create_task(slow.create_instance(LEAVE))
        await peers.create_arrived.wait()  # the slow create holds the one connection
        with pytest.raises(DingTalkTransient) as caught:
            await hasty.create_instance(LEAVE)
        assert env.sim.calls["workflow.create"] == 1
        await holding
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)
    assert isinstance(caught.value.__cause__, httpx.ConnectTimeout)


async def test_a_refused_connection_is_not_sent(env: SimEnv) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = client_for(env, f"http://127.0.0.1:{port}")
    with pytest.raises(DingTalkTransient) as caught:
        await client.create_instance(LEAVE)
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)
    # the token fetch failed first: the create itself never left
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_lost_answer_to_a_create_is_outcome_unknown(env: SimEnv) -> None:
    async with served(env) as (url, _):
        client = client_for(env, url)
        await client.get_form_schema("PROC-SIM-LEAVE")
        env.sim.faults.update(create_response_lost_rate=1.0, endpoints=["workflow.create"])
        with pytest.raises(DingTalkOutcomeUnknown):
            await client.create_instance(LEAVE)
    assert len(env.sim.instances()) == 1  # it was created


async def _token_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A DingTalk that hands out a token, then reads the next request whole and closes
    the connection without a word: the request reached it, the answer never comes."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        await reader.readexactly(length)
        if b"/oauth2/accessToken" not in head.split(b"\r\n")[0]:
            writer.close()
            return
        body = b'{"accessToken": "t", "expireIn": 7200}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()


async def test_a_connection_closed_after_the_create_was_read_is_outcome_unknown(
    env: SimEnv,
) -> None:
    server = await asyncio.start_server(_token_then_hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        client = client_for(env, f"http://127.0.0.1:{port}")
        with pytest.raises(DingTalkOutcomeUnknown) as caught:
            await client.create_instance(LEAVE)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


async def test_a_proxy_in_the_environment_is_used_as_before(
    env: SimEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a proxy set, httpx's own transport takes it: here a proxy that refuses, so
    nothing reaches the simulator and the create is called not sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    async with served(env) as (url, _):
        client = client_for(env, url)
        with pytest.raises(DingTalkTransient) as caught:
            await client.create_instance(LEAVE)
    assert not isinstance(caught.value, DingTalkOutcomeUnknown)
    assert not isinstance(env.opened[0]._transport, DingTalkTransport)
    assert env.sim.calls["workflow.create"] == 0


@pytest.mark.slow
async def test_a_large_upload_to_a_peer_that_stops_reading_times_out() -> None:
    """aiohttp has no write timeout: a large body goes on httpx's own transport, whose
    write timeout ends it."""
    stalled = asyncio.Event()

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        transport = DingTalkTransport(httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY))
        async with httpx.AsyncClient(transport=transport, timeout=0.3) as http:
            with pytest.raises(httpx.WriteTimeout):
                async with asyncio.timeout(10):
                    await http.put(f"http://127.0.0.1:{port}/upload", content=bytes(64 << 20))
        stalled.set()


class Headers:
    """An HTTP server that answers 200 to anything and notes each request's headers."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(sorted(scope["headers"]))
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def test_requests_leave_with_httpx_headers_and_no_others() -> None:
    """A file-store upload is signed over its headers: aiohttp must add none (it would
    give a body without a type ``application/octet-stream``)."""
    app = Headers()
    requests: list[tuple[str, dict[str, Any]]] = [
        ("PUT", {"content": b"receipt bytes"}),
        ("PUT", {"content": b"%PDF", "headers": {"Content-Type": "application/pdf"}}),
        ("POST", {"json": {"a": 1}}),
        ("GET", {"params": {"q": "1"}}),
        ("POST", {}),
    ]
    async with http_serve(app) as listening:
        for transport in (
            httpx.AsyncHTTPTransport(),
            DingTalkTransport(httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)),
        ):
            async with httpx.AsyncClient(transport=transport) as http:
                for method, kw in requests:
                    await http.request(method, f"{listening.base_url}/x", **kw)
    by_httpx, by_aiohttp = app.seen[: len(requests)], app.seen[len(requests) :]
    assert by_aiohttp == by_httpx

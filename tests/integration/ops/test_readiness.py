"""/healthz and /readyz: unready with the failing check named, and ready again after."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from syncd.app import App
from syncd.dingtalk.pacing import MemoryPacer
from syncd.dingtalk.stream import StreamState
from syncd.runner import Runner
from syncd.simulator import serve

DEADLINE = 20.0


async def probe(daemon: Runner, path: str = "/readyz") -> tuple[int, dict[str, Any]]:
    transport = httpx.ASGITransport(app=daemon.app.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as http:
        response = await http.get(path)
    return response.status_code, response.json()


def failing(body: dict[str, Any]) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


async def test_ready_names_every_check_and_health_needs_nothing(env):
    settings = env.settings(events={"stream": False})
    async with env.daemon(settings) as daemon:
        status, body = await probe(daemon)
        assert status == 200 and body["status"] == "ready"
        assert set(body["checks"]) == {"database", "migrations", "dingtalk"}
        status, body = await probe(daemon, "/healthz")
        assert status == 200 and body["status"] == "ok"


async def test_unready_while_migrations_are_behind(env):
    settings = env.settings(events={"stream": False})
    async with env.daemon(settings) as daemon:
        [(latest,)] = env.sql(
            "DELETE FROM syncd.schema_migrations WHERE version = "
            "(SELECT max(version) FROM syncd.schema_migrations) RETURNING version"
        )
        status, body = await probe(daemon)
        assert status == 503 and body["status"] == "unready"
        assert failing(body) == {"migrations"}
        assert body["checks"]["migrations"]["pending"] == [latest]


async def test_unready_while_dingtalk_calls_are_paused_for_quota(env):
    env.sim.faults.update(monthly_quota=0)
    env.submit_leave(days=1)
    settings = env.settings(events={"stream": False})
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        status, body = await probe(daemon)
    assert status == 503 and failing(body) == {"dingtalk"}
    assert body["checks"]["dingtalk"]["paused"] == "quota"


@pytest.mark.slow
async def test_unready_while_the_database_is_down_and_ready_after(env, pg_server):
    if pg_server.embedded is None:
        pytest.skip("needs the embedded PostgreSQL, which the test can stop and start")
    settings = env.settings(events={"stream": False}, database={"connect_timeout": 1.0})
    async with env.daemon(settings) as daemon:
        assert (await probe(daemon))[0] == 200
        pg_server.embedded.stop()
        try:
            status, body = await probe(daemon)
            assert status == 503 and "database" in failing(body)
            assert body["checks"]["database"]["error"]
            assert "password" not in str(body)
        finally:
            pg_server.embedded.start()
        async with asyncio.timeout(DEADLINE):
            while (await probe(daemon))[0] != 200:
                await daemon.app.pool.check()  # drops broken connections, opens new ones


@pytest.mark.slow
async def test_unready_while_the_stream_is_down_and_ready_after(env):
    async with serve(env.sim) as server:
        settings = env.settings(dingtalk={"api_url": server.base_url})
        pacer = MemoryPacer(clock=env.clock, rate=1000)
        async with Runner(App(settings, clock=env.clock, pacer=pacer)) as daemon:
            stream = daemon.app.stream
            assert stream is not None
            task = asyncio.create_task(stream.run())
            try:
                async with asyncio.timeout(DEADLINE):
                    await stream.wait_for(lambda s: s.state == StreamState.CONNECTED)
                assert (await probe(daemon))[0] == 200
                await env.sim.stream.drop()
                async with asyncio.timeout(DEADLINE):
                    await stream.wait_for(lambda s: s.state != StreamState.CONNECTED)
                status, body = await probe(daemon)
                assert status == 503 and failing(body) == {"stream"}
                async with asyncio.timeout(DEADLINE):
                    await stream.wait_for(lambda s: s.state == StreamState.CONNECTED)
                status, body = await probe(daemon)
                assert status == 200 and body["checks"]["stream"]["state"] == "connected"
            finally:
                await stream.stop()
                async with asyncio.timeout(DEADLINE):
                    await task

"""``Runner.run``: the way back does not wait for a create in flight on the way in."""

from __future__ import annotations

import asyncio

import httpx

from syncd.dingtalk.events import make_event
from syncd.pipeline.apply import EVENTS_PER_APPROVAL
from syncd.ports import NullObserver

from .conftest import APP_KEY

DEADLINE = 10.0
CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


class GatedCreates(httpx.AsyncBaseTransport):
    """The simulator's app, with creates held at the door until the gate opens."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.held = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1.0/workflow/processInstances":
            self.held.set()
            await self.gate.wait()
        return await self.inner.handle_async_request(request)


class Finished(NullObserver):
    def __init__(self) -> None:
        self.written = asyncio.Event()

    def approval_finished(self, kind: str, state: str, channel: str, **kw: object) -> None:
        if kw.get("written"):
            self.written.set()


async def test_an_outcome_is_written_back_while_a_create_is_in_flight(env):
    settings = env.settings(events={"stream": False, "callback": CALLBACK}, http={"port": 0})
    first = env.submit_leave(days=2)
    observer = Finished()
    gated = GatedCreates(httpx.ASGITransport(app=env.sim.app))
    async with env.daemon(settings, observer=observer, transport=gated) as daemon:
        gated.gate.set()
        await daemon.drain()  # the first request's instance is created
        gated.gate.clear()
        gated.held.clear()
        second = env.submit_leave(days=3)
        env.sim.callbacks.set_client(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
            )
        )
        env.sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
        stop = asyncio.Event()
        running = asyncio.create_task(daemon.run(stop))
        try:
            async with asyncio.timeout(DEADLINE):
                await gated.held.wait()  # the second request's create is in flight
                await env.advance(120)  # the rule approves the first; callbacks pushed
                await observer.written.wait()
            rows = env.sql("SELECT id, approval_status FROM app.leave_request ORDER BY id")
            assert rows == [(first, "APPROVED"), (second, None)]  # second: not decided
            assert not gated.gate.is_set()
        finally:
            gated.gate.set()
            stop.set()
            async with asyncio.timeout(DEADLINE):
                await running


async def test_apply_says_when_it_is_behind(env):
    """A full claim means more events wait: ``run`` then slows the way in to its pace."""
    env.submit_leave(days=2)
    settings = env.settings(events={"stream": False}, pipeline={"batch_size": 1})
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
        limit = EVENTS_PER_APPROVAL  # batch_size 1
        events = [
            make_event(
                "callback",
                "bpms_task_change",
                {"processInstanceId": instance_id, "type": "start", "taskId": n},
                f"burst-{n}",
            )
            for n in range(limit + 2)
        ]
        await daemon.app.inbox.put_many(events)
        assert await daemon.app.apply.run_once() == limit and daemon.app.apply.behind
        assert await daemon.app.apply.run_once() == 2 and not daemon.app.apply.behind

"""A paced call is checked against its slot twice: when it wakes, and again just before
its request is written (after the token is added), since building it, fetching a token
and a busy event loop can delay it past the first check. One that would leave late is not
written: it takes a new slot, and DingTalk sees it once, on time."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from syncd.dingtalk import endpoints as ep
from syncd.dingtalk.calls import ObservedClient, send
from syncd.dingtalk.client import HttpxApprovalClient, build_http_client
from syncd.dingtalk.pacing import DEFAULT_LATE, MemoryPacer, SendWindow, SlotMissed
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, LEAVE, FakeSleeper


class SlowTokens(httpx.AsyncBaseTransport):
    """The simulator, with a token fetch that takes ``seconds`` on the fake clock."""

    def __init__(self, sim: Simulator, clock: FakeClock, seconds: float) -> None:
        self.inner = httpx.ASGITransport(app=sim.app)
        self.clock, self.seconds = clock, seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == ep.TOKEN.path:
            self.clock.advance(self.seconds)
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("token_seconds", [0.0, DEFAULT_LATE / 2, 0.2, 3.0])
async def test_a_create_delayed_past_its_window_takes_a_new_slot(
    token_seconds: float, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    sim = Simulator(World.default(), clock=clock)
    api = build_http_client(
        APP_KEY,
        APP_SECRET,
        base_url="http://sim",
        clock=clock,
        transport=SlowTokens(sim, clock, token_seconds),
    )
    pacer = MemoryPacer(clock=clock, rate=20, sleep=FakeSleeper(clock))
    client = HttpxApprovalClient(api, pacer=pacer, clock=clock)
    caplog.set_level("INFO", logger="syncd.dingtalk.pacing")
    async with api:
        instance_id = await client.create_instance(LEAVE)
    await sim.aclose()
    assert [i.instance_id for i in sim.instances()] == [instance_id]
    assert sim.calls == Counter({ep.TOKEN.api: 1, ep.CREATE.api: 1})
    assert client.calls == 1
    retaken = [r for r in caplog.records if getattr(r, "action", "") == "pacing_slot_retaken"]
    assert len(retaken) == (token_seconds > DEFAULT_LATE)
    assert all(getattr(r, "check", "") == "send" for r in retaken)


async def test_a_request_past_its_window_is_not_written() -> None:
    clock = FakeClock()
    written: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        written.append(request)
        return httpx.Response(200, json={"instanceId": "x"})

    async with ObservedClient(transport=httpx.MockTransport(answer), base_url="http://sim") as http:
        closed = SendWindow(clock, until=clock.monotonic() - 0.001)
        with pytest.raises(SlotMissed):
            await send(http, ep.CREATE, json={}, window=closed)
        assert written == []
        await send(http, ep.CREATE, json={}, window=SendWindow(clock, until=clock.monotonic()))
        assert len(written) == 1


async def test_a_resend_after_a_refused_token_takes_its_own_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DingTalk refuses an expired token; the client fetches a new one (slowly) and sends
    the create again. That resend is a call of its own: past the first slot's window it
    takes a new slot, and the create is made once."""
    clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    sim = Simulator(World.default(), clock=clock)
    transport = SlowTokens(sim, clock, 0.0)
    api = build_http_client(
        APP_KEY, APP_SECRET, base_url="http://sim", clock=clock, transport=transport
    )
    pacer = MemoryPacer(clock=clock, rate=20, sleep=FakeSleeper(clock))
    client = HttpxApprovalClient(api, pacer=pacer, clock=clock)
    caplog.set_level("INFO", logger="syncd.dingtalk.pacing")
    async with api:
        first = await client.create_instance(LEAVE)
        sim.tokens.expire_all()
        transport.seconds = 0.2
        second = await client.create_instance(LEAVE)
    await sim.aclose()
    assert [i.instance_id for i in sim.instances()] == [first, second]
    # the refused create, the resend on a new slot, and one more token
    assert sim.calls == Counter({ep.TOKEN.api: 2, ep.CREATE.api: 3})
    assert client.calls == 2
    retaken = [r for r in caplog.records if getattr(r, "action", "") == "pacing_slot_retaken"]
    assert [getattr(r, "check", "") for r in retaken] == ["send"]

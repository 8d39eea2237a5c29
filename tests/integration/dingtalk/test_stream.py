"""The Stream client against the simulator over loopback, with a real inbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest

from syncd.db.inbox import PostgresInbox
from syncd.dingtalk.events import InboundEvent
from syncd.dingtalk.stream import StreamClient, StreamState
from syncd.errors import DingTalkAuthError, StoreError
from syncd.ports import InboxWriter
from syncd.simulator import serve

from .conftest import APP_KEY, APP_SECRET, LEAVE, SimEnv

DEADLINE = 5.0


@dataclass
class Live:
    env: SimEnv
    http: httpx.AsyncClient

    def stream(self, inbox: Any, secret: str = APP_SECRET, **kw: Any) -> StreamClient:
        kw.setdefault("backoff_initial", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        return StreamClient(self.http, APP_KEY, secret, inbox, **kw)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Run the simulator's due work until ``predicate`` holds."""
        async with asyncio.timeout(DEADLINE):
            while not predicate():
                await self.env.sim.advance(0)
                await asyncio.sleep(0.005)  # let frames cross the loopback socket

    async def create(self) -> str:
        return await self.env.client().create_instance(LEAVE)


@pytest.fixture
async def live(env: SimEnv) -> AsyncIterator[Live]:
    async with serve(env.sim) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        yield Live(env, http)


@contextlib.asynccontextmanager
async def running(stream: StreamClient) -> AsyncIterator[StreamClient]:
    task = asyncio.create_task(stream.run())
    try:
        async with asyncio.timeout(DEADLINE):
            await stream.wait_for(lambda s: s.state == StreamState.CONNECTED or task.done())
        yield stream
    finally:
        await stream.stop()
        async with asyncio.timeout(DEADLINE):
            await task


def _stored(rows: list[dict[str, Any]]) -> set[str]:
    return {r["dedup_key"] for r in rows}


def _expected(live: Live) -> set[str]:
    return {f"{e.event_type}:{e.event_id}" for e in live.env.sim.events}


async def test_events_are_stored_then_acknowledged(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    async with running(live.stream(inbox)) as stream:
        await live.create()  # instance start + first task start
        await live.until(lambda: len(live.env.sim.events_acknowledged) == 2)
    rows = await inbox_rows()
    assert _stored(rows) == _expected(live) and len(rows) == 2
    assert {r["channel"] for r in rows} == {"stream"}
    assert stream.events_stored == 2 and stream.state == StreamState.STOPPED


class GatedInbox:
    """Holds every put until the gate opens (the inbox is slow to commit)."""

    def __init__(self, inner: InboxWriter) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = 0

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        self.waiting += len(events)
        await self.gate.wait()
        return await self.inner.put_many(events)


async def test_no_ack_before_the_inbox_row_is_committed(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    gated = GatedInbox(inbox)
    async with running(live.stream(gated)):
        await live.create()
        await live.until(lambda: gated.waiting >= 1)
        assert live.env.sim.events_acknowledged == []
        gated.gate.set()
        await live.until(lambda: len(live.env.sim.events_acknowledged) == 2)
    assert len(await inbox_rows()) == 2


class CountingInbox:
    """Counts the transactions (calls) it is asked for, holding the first one back."""

    def __init__(self, inner: InboxWriter) -> None:
        self.inner = inner
        self.bursts: list[int] = []
        self.gate = asyncio.Event()

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        self.bursts.append(len(events))
        if len(self.bursts) == 1:
            await self.gate.wait()
        return await self.inner.put_many(events)


async def test_a_burst_of_events_is_stored_in_one_transaction(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    counting = CountingInbox(inbox)
    async with running(live.stream(counting)) as stream:
        await live.create()  # two events: the first is held while the second arrives
        for _ in range(9):
            await live.create()
        await live.until(lambda: len(live.env.sim.stream.inflight) == 20)
        assert live.env.sim.events_acknowledged == []
        counting.gate.set()
        await live.until(lambda: len(live.env.sim.events_acknowledged) == 20)
    assert _stored(await inbox_rows()) == _expected(live) and stream.events_stored == 20
    assert len(counting.bursts) < 20 and sum(counting.bursts) == 20
    assert max(counting.bursts) >= 10  # what waited behind the first went in together


async def test_events_received_before_a_disconnect_are_acknowledged_first(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    gated = GatedInbox(inbox)
    async with running(live.stream(gated, backoff_initial=60.0)) as stream:
        await live.create()
        await live.until(lambda: gated.waiting >= 1)
        [first] = live.env.sim.stream.connections.values()
        await live.env.sim.stream.disconnect()
        gated.gate.set()
        await live.until(lambda: stream.connects == 2 and stream.state == StreamState.CONNECTED)
    assert len(live.env.sim.events_acknowledged) == 2 and stream.events_stored == 2
    assert len(first.acks) == 2  # on the connection they came by, not delivered again
    assert _stored(await inbox_rows()) == _expected(live)


class FailingOnce:
    def __init__(self, inner: InboxWriter) -> None:
        self.inner = inner
        self.failed = False

    async def put_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        if not self.failed:
            self.failed = True
            raise StoreError("database restarting")
        return await self.inner.put_many(events)


async def test_inbox_failure_answers_later_and_the_event_comes_back(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    async with running(live.stream(FailingOnce(inbox))) as stream:
        await live.create()
        await live.until(lambda: stream.events_deferred + stream.events_stored == 2)
        assert stream.events_deferred >= 1
        await live.env.sim.advance(live.env.sim.world.stream.later_delay)
        await live.until(lambda: stream.events_stored == 2)
    assert _stored(await inbox_rows()) == _expected(live)


async def test_duplicated_and_reordered_events_are_stored_once(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    live.env.sim.faults.update(event_duplicate_rate=1.0, event_reorder_rate=1.0)
    async with running(live.stream(inbox)) as stream:
        instance_id = await live.create()
        live.env.sim.approve(instance_id)
        live.env.sim.approve(instance_id)
        await live.env.sim.advance(live.env.sim.faults.settings.reorder_delay)
        expected = 2 * len(live.env.sim.events)
        await live.until(lambda: stream.events_stored + stream.events_duplicate == expected)
    rows = await inbox_rows()
    assert _stored(rows) == _expected(live) and len(rows) == len(live.env.sim.events)


async def test_pings_are_answered_with_their_opaque(live: Live, inbox: PostgresInbox) -> None:
    async with running(live.stream(inbox)) as stream:
        await live.env.sim.advance(live.env.sim.world.stream.ping_interval)
        await live.until(lambda: stream.pings == 1)
        [conn] = live.env.sim.stream.connections.values()
        await live.until(lambda: len(conn.acks) == 1)
    [ack] = conn.acks
    assert ack["code"] == 200 and json.loads(ack["data"])["opaque"].startswith("ping_")


async def test_disconnect_frame_reconnects_at_once_and_loses_nothing(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    async with running(live.stream(inbox, backoff_initial=60.0)) as stream:
        await live.create()
        await live.until(lambda: stream.events_stored == 2)
        await live.env.sim.stream.disconnect()
        await live.until(lambda: stream.connects == 2 and stream.state == StreamState.CONNECTED)
        await live.create()
        await live.until(lambda: stream.events_stored == 4)
    assert _stored(await inbox_rows()) == _expected(live)


@pytest.mark.slow
async def test_dropped_connection_reconnects_with_backoff_and_loses_nothing(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    async with running(live.stream(inbox)) as stream:
        await live.env.sim.stream.drop()
        await live.create()  # events while nobody listens wait in DingTalk's backlog
        await live.until(lambda: stream.connects == 2)
        await live.until(lambda: stream.events_stored == 2)
    assert stream.reconnects == 1
    assert _stored(await inbox_rows()) == _expected(live)


@pytest.mark.slow
async def test_backoff_starts_afresh_after_a_connection_that_worked(
    live: Live, inbox: PostgresInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd.dingtalk.stream")
    async with running(live.stream(inbox, backoff_initial=0.05, backoff_cap=10.0)) as stream:
        for drops in range(1, 5):
            await live.env.sim.stream.drop()
            await live.until(partial(_connected, stream, drops + 1))
    delays = [
        vars(r)["delay"] for r in caplog.records if getattr(r, "action", "") == "stream_reconnect"
    ]
    assert len(delays) == 4
    assert max(delays) <= 0.05  # without the reset the fourth would wait 0.2-0.4 s


@pytest.mark.slow
async def test_silent_connection_is_replaced_and_nothing_is_lost(
    live: Live, inbox: PostgresInbox, inbox_rows: Any
) -> None:
    sim = live.env.sim
    async with running(live.stream(inbox, silence_timeout=0.3)) as stream:
        sim.faults.update(stream_silent=True)
        await live.create()
        await sim.advance(0)  # pushed into the silent connection: never arrives
        await live.until(lambda: stream.connects >= 2)
        assert stream.events_stored == 0
        sim.faults.update(stream_silent=False)
        await sim.advance(sim.world.stream.ack_timeout)  # no ACK: DingTalk delivers again
        await live.until(lambda: stream.events_stored == 2)
    assert _stored(await inbox_rows()) == _expected(live)


async def test_refused_credentials_stop_the_client(live: Live, inbox: PostgresInbox) -> None:
    stream = live.stream(inbox, secret="wrong")
    with pytest.raises(DingTalkAuthError):
        async with asyncio.timeout(DEADLINE):
            await stream.run()
    assert stream.state == StreamState.FAILED and "wrong" not in repr(stream)


def _connected(stream: StreamClient, times: int) -> bool:
    return stream.connects == times

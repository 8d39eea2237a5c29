"""A replica that dies holding claims gives them back after ``pipeline.lease_seconds``.

Found by the fault suite (kill -9 under load): polls, reconciliations, events, cancels
and write-back retries claimed by a killed replica were held for a hard-coded two to
five minutes whatever the configured lease, so approvals sat still long after a
restart. Here a replica "dies" in the middle of a stage (its DingTalk transport raises
something no stage expects, leaving the claims in place) and a survivor must take the
work over once the configured lease has passed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from syncd.app import App
from syncd.db.submit_store import PostgresSubmitStore
from syncd.dingtalk.events import InboundEvent, make_event
from syncd.dingtalk.pacing import MemoryPacer, SendWindow
from syncd.domain import ApprovalState
from syncd.runner import Runner
from syncd.simulator.events import instance_data

LEASE = 30


class DyingTransport(httpx.AsyncBaseTransport):
    """The simulator, except that the process "dies" when it calls ``method path``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, call: str) -> None:
        self.inner = inner
        self.method, self.path = call.split(" ")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (request.method, request.url.path) == (self.method, self.path):
            raise RuntimeError("the replica died here")
        return await self.inner.handle_async_request(request)


def replica(env, name: str, dies_at: str | None = None) -> Runner:
    async def sleep(seconds: float) -> None:
        env.clock.advance(seconds)

    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=env.sim.app)
    if dies_at:
        transport = DyingTransport(transport, dies_at)
    settings = env.settings(replica_name=name, pipeline={"lease_seconds": LEASE})
    pacer = MemoryPacer(clock=env.clock, rate=1000, sleep=sleep)
    return Runner(App(settings, clock=env.clock, transport=transport, pacer=pacer))


async def test_polls_of_a_dead_replica_are_taken_over_after_the_lease(env):
    env.submit_leave(days=5)  # no rule decides: it waits for a person
    async with replica(env, "doomed", dies_at="GET /v1.0/workflow/processInstances") as doomed:
        await doomed.app.stages["ingest"].run_once()
        await doomed.app.stages["submit"].run_once()  # a POST: the create goes through
        await env.advance(61)  # quiet for longer than polling.quiet_after
        with pytest.raises(RuntimeError):
            await doomed.app.stages["poll"].run_once()  # the GET: dies holding the claim
    [instance] = env.sim.instances()
    env.sim.approve(instance.instance_id)
    env.sim.approve(instance.instance_id)
    await env.advance(LEASE + 1)
    async with replica(env, "survivor") as survivor:
        await survivor.app.stages["poll"].run_once()
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]


async def test_reconciliations_of_a_dead_replica_are_taken_over_after_the_lease(env):
    env.submit_leave(days=1)
    env.sim.faults.update(create_response_lost_rate=1.0)
    async with replica(
        env, "doomed", dies_at="POST /v1.0/workflow/processes/instanceIds/query"
    ) as d:
        await d.drain()
        assert env.sql("SELECT state FROM syncd.approval") == [("unknown",)]
        env.sim.faults.update(create_response_lost_rate=0.0)
        await env.advance(11)  # pipeline.unknown_grace
        with pytest.raises(RuntimeError):
            await d.app.stages["reconcile"].run_once()  # dies listing, holding the claim
    await env.advance(LEASE + 1)
    async with replica(env, "survivor") as survivor:
        await survivor.app.stages["reconcile"].run_once()
    assert env.sql("SELECT state FROM syncd.approval") in ([("running",)], [("approved",)])
    assert len(env.sim.instances()) == 1


class StallingPacer(MemoryPacer):
    """Paces like the shared pacer, but a create waits until the test lets it go: the
    replica's database (or the whole process) stalls between the intent and the send."""

    def __init__(self, env) -> None:
        async def sleep(seconds: float) -> None:
            env.clock.advance(seconds)

        super().__init__(clock=env.clock, rate=1000, sleep=sleep)
        self.stalled = asyncio.Event()
        self.go = asyncio.Event()

    async def acquire(self, endpoint: str) -> SendWindow:
        if endpoint == "create":
            self.stalled.set()
            await self.go.wait()
        return await super().acquire(endpoint)


async def test_a_create_stalled_past_its_lease_is_not_sent(env):
    """A replica commits its intent, then stalls (database pacing row locked, network
    stall, GC pause) for longer than its lease. Another replica expires the lease,
    finds no instance and creates one. When the first replica wakes up, it must not send
    its create any more: that would be a second instance for the same approval."""
    env.submit_leave(days=1)
    settings = env.settings(replica_name="stalled", pipeline={"lease_seconds": LEASE})
    pacer = StallingPacer(env)
    transport = httpx.ASGITransport(app=env.sim.app)
    stalled = Runner(App(settings, clock=env.clock, transport=transport, pacer=pacer))
    async with stalled, replica(env, "survivor") as survivor:
        await stalled.app.stages["ingest"].run_once()
        submit = asyncio.create_task(stalled.app.stages["submit"].run_once())
        async with asyncio.timeout(5):
            await pacer.stalled.wait()
        await env.advance(LEASE + 11)  # past the lease and pipeline.unknown_grace
        await survivor.drain()
        assert len(env.sim.instances()) == 1
        pacer.go.set()
        async with asyncio.timeout(5):
            await submit
        await env.advance(60)
        await survivor.drain()
    assert len(env.sim.instances()) == 1
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]


async def test_a_late_failure_report_leaves_the_new_owners_claim_alone(env):
    """Replica A's create failed, but A reports it only after its lease expired and B
    claimed the approval again. A's report must not send B's claim back to pending (B's
    instance would then be recorded nowhere, and a third create would follow)."""
    env.submit_leave(days=1)
    async with replica(env, "b") as daemon:
        await daemon.app.stages["ingest"].run_once()
        store = PostgresSubmitStore(daemon.app.pool, actor="test")
        now = env.clock.now()
        [item] = await store.claim_submits(1, now, "a", now + timedelta(seconds=LEASE))
        later = now + timedelta(seconds=LEASE + 1)
        assert await store.expire_leases(later) == [item.id]
        assert await store.record_failed(
            item.id, to_state=ApprovalState.PENDING, now=later, next_attempt_at=later,
            error_code="x", error_message="reconciled: not created", owner=None,
        )  # fmt: skip
        [claimed] = await store.claim_submits(1, later, "b", later + timedelta(seconds=LEASE))
        moved = await store.record_failed(
            item.id, to_state=ApprovalState.PENDING, now=later, next_attempt_at=later,
            error_code="systemError", error_message="late report from a", owner="a",
        )  # fmt: skip
    assert not moved and claimed.id == item.id
    assert env.sql("SELECT state, lease_owner FROM syncd.approval") == [("submitting", "b")]


def _finish_event(instance: Any) -> InboundEvent:
    return make_event(
        "stream", "bpms_instance_change", instance_data(instance, "finish"), instance.instance_id
    )


@pytest.mark.parametrize("stop", ["clean", "dies"])
async def test_events_a_replica_stored_for_itself_are_applied_by_another(env, stop):
    """A replica stores a burst leased to its own apply (``syncd/held.py``) and goes away
    before applying it. Stopped cleanly, it gives the leases back and a survivor applies
    the events at once; dead (its memory gone), the survivor applies them once the held
    lease (here ``lease_seconds``, shorter than 30 s) has passed, not before."""
    env.submit_leave(days=5)  # no rule decides: it waits for a person
    async with replica(env, "first") as first:
        await first.app.stages["ingest"].run_once()
        await first.app.stages["submit"].run_once()
        [instance] = env.sim.instances()
        env.sim.approve(instance.instance_id)
        env.sim.approve(instance.instance_id)
        [instance] = env.sim.instances()
        assert await first.app.inbox.put_many([_finish_event(instance)]) == [True]
        assert env.sql("SELECT attempts FROM syncd.inbox WHERE processed_at IS NULL") == [(1,)]
        if stop == "dies":
            held = first.app.inbox.inner.held
            assert held is not None
            held.release()  # forgotten, leases kept
    async with replica(env, "survivor") as survivor:
        await survivor.app.stages["apply"].run_once()
        state = "approved" if stop == "clean" else "running"
        assert env.sql("SELECT state FROM syncd.approval") == [(state,)]
        await env.advance(LEASE)
        await survivor.app.stages["apply"].run_once()
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]

"""Ids from a restarted simulator never repeat an earlier run's, unless a seed is given
(a daemon that keeps its database across a simulator restart would otherwise drop new
events as duplicates); with the same seed a run's ids repeat exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.simulator import Simulator, World
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, Api, expense_form

Ids = dict[str, list[Any]]


def _world(seed: int | None) -> World:
    world = World.default()
    world.faults.seed = seed
    return world


async def _run(world: World, count: int) -> tuple[Ids, int]:
    """One simulator run: a token, ``count`` instances decided by hand, a Stream ticket;
    every id it handed out, by kind, and the seed it ran with."""
    sim = Simulator(world, clock=FakeClock())
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        credentials = {"appKey": APP_KEY, "appSecret": APP_SECRET}
        r = await client.post("/v1.0/oauth2/accessToken", json=credentials)
        token = r.json()["accessToken"]
        api = Api(client, {"x-acs-dingtalk-access-token": token})
        requests = [r.headers["x-acs-request-id"]]
        for _ in range(count):
            r = await api.create(formComponentValues=expense_form("5000"))
            requests.append(r.headers["x-acs-request-id"])
        ticket = (
            await client.post(
                "/v1.0/gateway/connections/open",
                json={"clientId": APP_KEY, "clientSecret": APP_SECRET},
            )
        ).json()["ticket"]
        shown_seed = (await client.get("/_sim/faults")).json()["faults"]["seed"]
    instances = sim.instances()
    for instance in instances:
        sim.approve(instance.instance_id)
    assert shown_seed == sim.seed
    ids: Ids = {
        "instance": [i.instance_id for i in instances],
        "business": [i.business_id for i in instances],
        "task": [t.task_id for i in instances for t in i.tasks],
        "event": [e.event_id for e in sim.events],
        "token": [token],
        "ticket": [ticket],
        "request": requests,
    }
    return ids, sim.seed


_RUN = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_RUN
@given(count=st.integers(1, 4))
def test_runs_without_a_seed_share_no_id(count: int) -> None:
    first, seed = asyncio.run(_run(_world(None), count))
    second, _ = asyncio.run(_run(_world(None), count))
    for kind, values in first.items():
        assert len(set(values)) == len(values), kind  # unique within a run
        assert not set(values) & set(second[kind]), kind
    # The seed a run drew (shown by GET /_sim/faults) repeats it.
    assert asyncio.run(_run(_world(seed), count))[0] == first


@_RUN
@given(seed=st.integers(0, 2**63 - 1), count=st.integers(1, 4))
def test_the_same_seed_repeats_every_id(seed: int, count: int) -> None:
    first, used = asyncio.run(_run(_world(seed), count))
    assert used == seed
    assert asyncio.run(_run(_world(seed), count))[0] == first


def test_task_ids_are_int64_below_2_53() -> None:
    ids, _ = asyncio.run(_run(_world(None), 1))
    assert all(isinstance(t, int) and 10**11 <= t < 2**53 for t in ids["task"])
    assert all(len(b) == 21 and b.isdigit() for b in ids["business"])  # yyyyMMddHHmm + 9

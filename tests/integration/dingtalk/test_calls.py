"""Every DingTalk call is declared once, routed by the simulator and counted by its name.

Drawn plans of calls (every client method, the Stream open, the failed-push list, token
expiry, time passing) run against the in-process simulator under drawn faults (5xx, 429,
resets, lost create answers, an exhausted quota, on drawn endpoints). Whatever happens,
each request the simulator saw is counted exactly once, timed, under the declaration it
was sent as, with an outcome from the closed set: there is no ``other``. A request no
declaration names is refused before it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from syncd.dingtalk import endpoints as ep
from syncd.dingtalk.auth import DingTalkTokenAuth
from syncd.dingtalk.calls import ObservedClient, UndeclaredCall
from syncd.dingtalk.client import HttpxApprovalClient, build_http_client, open_stream_connection
from syncd.dingtalk.failed import FailedPushList
from syncd.dingtalk.pacing import MemoryPacer
from syncd.errors import DingTalkError
from syncd.metrics import Metrics
from syncd.simulator import Simulator, World, app
from syncd.testing import FakeClock

from .conftest import APP_KEY, APP_SECRET, LEAVE, FakeSleeper

NAMES = {e.name for e in ep.ENDPOINTS}
RATES = st.sampled_from([0.0, 0.0, 0.5, 1.0])
FAULTS = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**16),
        "error_5xx_rate": RATES,
        "error_429_rate": RATES,
        "reset_rate": RATES,
        "create_response_lost_rate": RATES,
        "monthly_quota": st.sampled_from([None, None, 0, 3]),
        "endpoints": st.lists(st.sampled_from([e.api for e in ep.ENDPOINTS]), max_size=3),
    }
)


@dataclass
class Rig:
    """A simulator, syncd's DingTalk clients on it, and the metrics they report to."""

    sim: Simulator
    clock: FakeClock
    registry: CollectorRegistry
    api: httpx.AsyncClient
    oapi: httpx.AsyncClient
    client: HttpxApprovalClient
    ids: list[str] = field(default_factory=list)

    def instance(self) -> str:
        return self.ids[-1] if self.ids else "no-such-instance"

    def requests(self) -> Counter[tuple[str, ...]]:
        """``syncd_dingtalk_requests_total`` by (call, outcome)."""
        return self._by("syncd_dingtalk_requests_total", "call", "outcome")

    def _by(self, name: str, *labels: str) -> Counter[tuple[str, ...]]:
        found: Counter[tuple[str, ...]] = Counter()
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name:
                    found[tuple(sample.labels[k] for k in labels)] += int(sample.value)
        return +found


async def _create(w: Rig) -> None:
    w.ids.append(await w.client.create_instance(LEAVE))


async def _list(w: Rig) -> None:
    await w.client.list_instance_ids("PROC-SIM-LEAVE", w.clock.now().replace(day=1))


async def _terminate(w: Rig) -> None:
    await w.client.terminate_instance(w.instance(), remark="drawn")


async def _advance(w: Rig) -> None:
    w.clock.advance(20)


async def _expire_tokens(w: Rig) -> None:
    w.sim.tokens.expire_all()


OPERATIONS: dict[str, Callable[[Rig], Awaitable[Any]]] = {
    "create": _create,
    "get": lambda w: w.client.get_instance(w.instance()),
    "list": _list,
    "terminate": _terminate,
    "comment": lambda w: w.client.add_comment(w.instance(), "drawn", "u1"),
    "schema": lambda w: w.client.get_form_schema("PROC-SIM-LEAVE"),
    "stream_open": lambda w: open_stream_connection(w.api, APP_KEY, APP_SECRET),
    "failed_list": lambda w: FailedPushList(w.oapi).failed_events(),
    "expire_tokens": _expire_tokens,
    "advance": _advance,
}


async def _run(plan: list[str], faults: dict[str, Any]) -> Rig:
    clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    sim = Simulator(World.default(), clock=clock)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    transport = httpx.ASGITransport(app=sim.app)
    api = build_http_client(
        APP_KEY,
        APP_SECRET,
        base_url="http://sim",
        clock=clock,
        transport=transport,
        observer=metrics,
    )
    oapi = ObservedClient(
        base_url="http://sim", auth=api.auth, transport=transport, observer=metrics
    )
    pacer = MemoryPacer(clock=clock, rate=1000, sleep=FakeSleeper(clock))
    client = HttpxApprovalClient(api, pacer=pacer, clock=clock)
    world = Rig(sim, clock, registry, api, oapi, client)
    sim.faults.update(**faults)
    try:
        for name in plan:
            with contextlib.suppress(DingTalkError):
                await OPERATIONS[name](world)
    finally:
        await api.aclose()
        await oapi.aclose()
        await sim.aclose()
    return world


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.sampled_from(sorted(OPERATIONS)), min_size=1, max_size=8), faults=FAULTS)
def test_every_request_is_counted_once_under_its_declared_name(
    plan: list[str], faults: dict[str, Any]
) -> None:
    w = asyncio.run(_run(plan, faults))
    requests = w.requests()
    by_name: Counter[str] = Counter()
    for (name, _), count in requests.items():
        by_name[name] += count
    assert set(by_name) <= NAMES  # no "other": every label is a declared name
    assert {name for _, name in requests} <= set(ep.OUTCOMES)
    seen = {e.name: w.sim.calls[e.api] for e in ep.ENDPOINTS if w.sim.calls[e.api]}
    assert dict(by_name) == seen
    timed = w._by("syncd_dingtalk_request_duration_seconds_count", "call", "outcome")
    assert timed == requests
    throttled = w._by("syncd_dingtalk_throttled_total", "call")
    assert throttled == Counter({(n,): c for (n, o), c in requests.items() if o == "throttled"})


@pytest.mark.parametrize("endpoint", ep.ENDPOINTS, ids=lambda e: e.name)
async def test_every_declared_call_is_routed_by_the_simulator(endpoint: ep.Endpoint) -> None:
    sim = Simulator(World.default(), clock=FakeClock())
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        response = await http.request(endpoint.method, endpoint.path)
    await sim.aclose()
    assert sim.calls == Counter({endpoint.api: 1})
    assert "NotFound" not in response.text and '"errcode": 404' not in response.text


async def test_an_undeclared_request_is_refused_before_it_leaves() -> None:
    sim = Simulator(World.default(), clock=FakeClock())
    registry = CollectorRegistry()
    transport = httpx.ASGITransport(app=sim.app)
    auth = DingTalkTokenAuth(APP_KEY, APP_SECRET, clock=FakeClock())
    plain = httpx.AsyncClient(transport=transport, base_url="http://sim", auth=auth)
    observed = ObservedClient(
        transport=transport, base_url="http://sim", observer=Metrics(registry)
    )
    async with plain, observed:
        with pytest.raises(UndeclaredCall, match="processInstances is not a declared"):
            await observed.get("/v1.0/workflow/processInstances")
        with pytest.raises(UndeclaredCall, match=r"syncd/dingtalk/endpoints\.py"):
            await plain.get("/v1.0/workflow/processInstances")
    await sim.aclose()
    assert sim.calls == Counter()  # not even a token fetch
    assert registry.get_sample_value("syncd_dingtalk_requests_total") is None


async def test_a_declared_call_the_simulator_cannot_serve_stops_it_being_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new = ep.Endpoint("new", "workflow.new", ep.Host.API, "POST", "/v1.0/workflow/new")
    monkeypatch.setattr(app, "SERVED", (*app.SERVED, new))
    sim = Simulator(World.default(), clock=FakeClock())
    with pytest.raises(LookupError, match=r"no handler for workflow\.new"):
        app.Api(sim).routes()
    await sim.aclose()

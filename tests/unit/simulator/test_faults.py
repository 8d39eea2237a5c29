"""Limits and fault switches: QPS, monthly quota, 5xx, 429, resets, lost responses, events."""

from __future__ import annotations

import httpx
import pytest

from syncd.simulator import Simulator, World


async def test_qps_limit_per_app_per_api(api, clock) -> None:
    for _ in range(20):
        assert (await api.get("x")).json()["code"] == "processInstanceNotExist"
    r = await api.get("x")
    api.error(r, 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    assert r.json()["message"] == "您的企业应用调用钉钉开放平台当前接口的所有请求都被暂时禁用了"
    # another API has its own window
    assert (await api.create()).status_code == 200
    clock.advance(1)
    assert (await api.get("x")).json()["code"] == "processInstanceNotExist"


async def test_qpm_limit(api, sim, clock) -> None:
    sim.faults.update(qpm_per_api=3)
    for _ in range(3):
        await api.get("x")
        clock.advance(2)
    api.error(await api.get("x"), 403, "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi")
    clock.advance(60)
    assert (await api.get("x")).status_code == 400


async def test_monthly_quota(api, sim, clock, client) -> None:
    sim.faults.update(monthly_quota=3, qps_per_api=None)
    for _ in range(3):
        await api.get("x")
    api.error(await api.get("x"), 403, "Forbidden.AccessDenied.ApiCountLimitForOrg")
    # token calls are exempt
    r = await client.post(
        "/v1.0/oauth2/accessToken",
        json={"appKey": "dingsimappkey0001", "appSecret": "sim-app-secret-0001"},
    )
    assert r.status_code == 200
    clock.advance(31 * 86400)  # next calendar month
    assert (await api.get("x")).status_code == 400


async def test_5xx_and_429_rates(api, sim) -> None:
    sim.faults.update(error_5xx_rate=1.0)
    api.error(await api.get("x"), 500, "systemError")
    sim.faults.update(error_5xx_rate=0.0, error_429_rate=1.0)
    api.error(await api.get("x"), 429, "system.busy")
    sim.faults.update(error_429_rate=0.0)
    assert not sim.instances()
    assert sim.calls["workflow.get"] == 2


async def test_faults_limited_to_endpoints(api, sim) -> None:
    sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
    assert (await api.get("x")).status_code == 400
    api.error(await api.create(), 500, "systemError")
    assert not sim.instances()


async def test_reset_is_a_transport_error(api, sim) -> None:
    sim.faults.update(reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await api.create()
    assert not sim.instances()


async def test_create_applied_but_response_lost(api, sim) -> None:
    sim.faults.update(create_response_lost_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await api.create()
    assert len(sim.instances()) == 1
    sim.faults.reset()
    assert (await api.create()).status_code == 200
    assert len(sim.instances()) == 2


async def test_rates_are_deterministic_with_a_seed(clock) -> None:
    def outcomes(seed: int) -> list[str | None]:
        sim = Simulator(World.default(), clock=clock)
        sim.faults.update(seed=seed, error_5xx_rate=0.3, error_429_rate=0.3, reset_rate=0.1)
        return [sim.faults.request_fault("workflow.get") for _ in range(50)]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    assert {"5xx", "429", "reset", None} == set(outcomes(7))


async def test_duplicate_events(world, clock) -> None:
    world.faults.event_duplicate_rate = 1.0
    sim = Simulator(world, clock=clock)
    sim._emit("bpms_instance_change", {"type": "start"})
    await sim.advance(0)
    assert [len(v) for v in sim.stream.backlog.values()] == [2]


async def test_reordered_events(world, clock) -> None:
    sim = Simulator(world, clock=clock)
    sim.faults.update(event_reorder_rate=1.0, reorder_delay=3.0)
    sim._emit("bpms_instance_change", {"type": "start"})
    sim.faults.update(event_reorder_rate=0.0)
    sim._emit("bpms_instance_change", {"type": "finish"})
    await sim.advance(0)
    assert [e.data["type"] for e, _ in sim.stream.backlog["dingsimappkey0001"]] == ["finish"]
    await sim.advance(3)
    order = [e.data["type"] for e, _ in sim.stream.backlog["dingsimappkey0001"]]
    assert order == ["finish", "start"]


async def test_latency(api, sim) -> None:
    sim.faults.update(latency={"distribution": "fixed", "mean_ms": 1})
    assert sim.faults.latency() == 0.001
    assert (await api.get("x")).status_code == 400
    for distribution in ("uniform", "normal", "exponential"):
        sim.faults.update(latency={"distribution": distribution, "mean_ms": 5, "spread_ms": 2})
        assert sim.faults.latency() >= 0


def test_unknown_switch_is_rejected(sim) -> None:
    with pytest.raises(ValueError, match="unknown"):
        sim.faults.update(nonsense=1)
    with pytest.raises(ValueError):
        sim.faults.update(error_5xx_rate=2)

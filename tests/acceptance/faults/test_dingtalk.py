"""DingTalk misbehaving in every way the simulator can, while the load flows.

Latency with spikes beyond the client timeout, 5xx, 429 and QPS throttling, connection
resets, creates whose response is lost, duplicated and reordered events, Stream
disconnect frames and a silent Stream, and HTTP callbacks that fail while the daemon
restarts (retried by DingTalk, then swept from the failed-push list). Events come over
Stream and callbacks at once, so every event also arrives twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from syncd.embedded import free_port

from .harness import (
    APP_KEY,
    FULL,
    Loader,
    Report,
    check_invariants,
    load,
    query,
    rng,
    timed,
    wait_settled,
)

NORMAL = {"distribution": "exponential", "mean_ms": 40, "spread_ms": 0}
SPIKE = {"distribution": "uniform", "mean_ms": 3200, "spread_ms": 400}  # past timeout = 3


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 240)
async def test_dingtalk_faults_lose_and_duplicate_nothing(fault_env):
    env = fault_env
    total = load(150, 1000)
    report = Report("DingTalk faults: latency spikes, 5xx, 429, resets, lost creates, events")
    draw = rng()
    env.sim.faults.update(
        seed=draw.randrange(1 << 30),
        latency=NORMAL,
        error_5xx_rate=0.05,
        error_429_rate=0.05,
        reset_rate=0.05,
        create_response_lost_rate=0.1,
        event_duplicate_rate=0.2,
        event_reorder_rate=0.2,
        reorder_delay=100,  # 1 s at time_scale 0.01
        stream_disconnect_every=400,  # 4 s
        qps_per_api=10,  # DingTalk throttles below the daemon's own pace of 20/s
    )
    port = free_port()
    fleet = env.fleet(callback=True, http_port=port)
    env.sim.callbacks.set_url(APP_KEY, f"http://127.0.0.1:{port}/dingtalk/callback")
    loader = Loader(env.app_dsn, total, batch=10, pause=0.4)
    phases = Counter[str]()
    async with timed(report):
        await fleet.start("a")
        loader.start()
        for _ in range(load(2, 6)):
            await asyncio.sleep(draw.uniform(1.0, 3.0))
            env.sim.faults.update(latency=SPIKE)
            await asyncio.sleep(draw.uniform(1.0, 2.0))
            env.sim.faults.update(latency=NORMAL)
            phases["latency_spikes"] += 1
            await asyncio.sleep(draw.uniform(0.5, 2.0))
            env.sim.faults.update(stream_silent=True)
            await asyncio.sleep(draw.uniform(4.0, 6.0))  # longer than stream_silence_timeout
            env.sim.faults.update(stream_silent=False)
            phases["stream_silences"] += 1
            assert await fleet.stop("a") == 0  # callbacks fail meanwhile: DingTalk retries
            await asyncio.sleep(draw.uniform(0.3, 1.0))
            await fleet.start("a")
            phases["restarts_during_callbacks"] += 1
        await loader.wait(300)
        await wait_settled(env.admin_dsn, total, 600 if FULL else 150)
        assert await fleet.stop("a") == 0
    failed = Counter(
        f"{e['transport']} {e.get('reason', 'refused')}" for e in env.sim.events_failed
    )
    inbox = await _inbox(env.admin_dsn)
    report.faults = {
        **phases,
        "dingtalk_calls": dict(env.sim.calls),
        "event_push_failures": dict(failed),
        "inbox_by_channel": inbox,
    }
    await check_invariants(env.admin_dsn, env.sim, report)
    report.emit()
    assert report.adopted_after_loss > 0, "no lost create was reconciled"
    assert inbox.get("callback", 0) > 0 and inbox.get("stream", 0) > 0


async def _inbox(dsn: str) -> dict[str, int]:
    rows = await query(dsn, "SELECT channel, count(*) FROM syncd.inbox GROUP BY channel")
    return {channel: int(n) for channel, n in rows}

"""kill -9 at random moments under load, with a restart after each: nothing is lost,
there is one instance per approval and one write-back.

The daemon reaches PostgreSQL through a proxy that delays every packet a little and the
simulator delays creates, so many kills land between DingTalk's create and the commit
that records it; those approvals must be reconciled (adopted), never created twice.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from .harness import (
    FULL,
    Loader,
    Proxy,
    Report,
    check_invariants,
    load,
    rng,
    submitting,
    timed,
    wait_settled,
)


@pytest.mark.slow
@pytest.mark.timeout(1800 if FULL else 300)
async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(fault_env):
    env = fault_env
    total = load(200, 2000)
    wanted = load(5, 24)
    report = Report("kill -9 at random moments, restart after each")
    draw = rng()
    env.sim.faults.update(
        latency={"distribution": "uniform", "mean_ms": 150, "spread_ms": 120},
        endpoints=["workflow.create"],
    )
    async with Proxy("127.0.0.1", env.pg.port) as proxy:
        proxy.delay = 0.001
        fleet = env.fleet(proxy.dsn(env.dsn))
        loader = Loader(env.app_dsn, total, batch=10, pause=0.45)
        spread = total / 20 / wanted  # the load takes about total/20 s: spread kills over it
        async with timed(report):
            await fleet.start("a")
            loader.start()
            deadline = time.monotonic() + (1200 if FULL else 150)
            while fleet.kills < wanted and time.monotonic() < deadline:
                await asyncio.sleep(draw.uniform(0.2, 2 * spread))  # a random moment
                in_flight = await submitting(env.admin_dsn)
                await fleet.kill("a")
                report.kills_submitting += in_flight > 0
                await fleet.start("a")
            await loader.wait(600)
            await wait_settled(env.admin_dsn, total, 900 if FULL else 150)
            assert await fleet.stop("a") == 0
    report.kills = fleet.kills
    report.faults = {
        "create_latency_ms": "30-270",
        "db_packet_delay_ms": 1,
        "restarts": fleet.kills,
    }
    await check_invariants(env.admin_dsn, env.sim, report)
    report.emit()
    assert report.kills >= wanted
    assert report.approvals == total

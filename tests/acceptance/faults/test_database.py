"""PostgreSQL stopped and started under load, and a proxy that cuts and stalls it.

The daemons must ride out both without exiting, lose nothing, create nothing twice; a
replica whose database connection stalls for longer than its lease must not create an
instance that the replica which took over has created already.
"""

from __future__ import annotations

import asyncio

import pytest

from .harness import (
    FULL,
    Loader,
    Proxy,
    Report,
    check_invariants,
    load,
    rng,
    timed,
    wait_settled,
)


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 240)
async def test_postgresql_stopped_and_started_mid_run(fault_env):
    env = fault_env
    if env.pg is None:
        pytest.skip("needs the embedded server, which the suite can stop and start")
    total = load(150, 1000)
    report = Report("PostgreSQL stopped (fast, then immediate) and started mid-run")
    draw = rng()
    fleet = env.fleet()
    loader = Loader(env.app_dsn, total, batch=10, pause=0.4)
    outages = []
    async with timed(report):
        await fleet.start("a")
        loader.start()
        for mode in ("fast", "immediate"):
            await asyncio.sleep(draw.uniform(1.0, 4.0))
            await asyncio.to_thread(env.pg.stop, mode)
            down = draw.uniform(2.0, 5.0)
            await asyncio.sleep(down)  # the outage itself lasts a random time
            await asyncio.to_thread(env.pg.start)
            outages.append(f"{mode} {down:.1f}s")
        await loader.wait(300)
        await wait_settled(env.admin_dsn, total, 600 if FULL else 150)
        assert fleet.replicas["a"].alive, "the daemon exited while PostgreSQL was down"
        assert await fleet.stop("a") == 0
    report.faults = {"postgres_restarts": outages}
    await check_invariants(env.admin_dsn, env.sim, report)
    report.emit()


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 240)
async def test_proxy_cuts_and_stalls_the_database_connection(fault_env):
    env = fault_env
    total = load(150, 1000)
    report = Report("TCP proxy cuts and stalls one replica's database connection")
    draw = rng()
    async with Proxy("127.0.0.1", env.pg.port if env.pg else 5432) as proxy:
        behind = env.fleet(proxy.dsn(env.dsn), lease=12.0)
        direct = env.fleet(lease=12.0)
        loader = Loader(env.app_dsn, total, batch=10, pause=0.3)
        async with timed(report):
            await behind.start("proxied")
            await direct.start("direct")
            loader.start()
            for _ in range(load(2, 6)):
                await asyncio.sleep(draw.uniform(0.5, 2.0))
                proxy.cut()
                await asyncio.sleep(draw.uniform(0.5, 2.0))
                proxy.stall()  # longer than the lease: the other replica takes over
                await asyncio.sleep(draw.uniform(13.0, 15.0))
                if draw.random() < 0.5:
                    proxy.cut()  # ...and the stalled connections die instead of resuming
                proxy.resume()
            await loader.wait(300)
            await wait_settled(env.admin_dsn, total, 600 if FULL else 150)
            assert behind.replicas["proxied"].alive and direct.replicas["direct"].alive
            assert await behind.stop("proxied") == 0
            assert await direct.stop("direct") == 0
    report.faults = {"cuts": proxy.cuts, "stalls_longer_than_lease": proxy.stalls}
    await check_invariants(env.admin_dsn, env.sim, report)
    report.emit()

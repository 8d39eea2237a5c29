"""The fault suite's crash scenarios with the business side in MariaDB/MySQL: the leave
table and its outbox live in a business database, a capture trigger turns the
application's inserts into outbox rows, syncd's relay moves them into its PostgreSQL, and
the outcomes are written back there through the ledger.

- ``syncd run`` killed -9 at random moments under load and started again;
- the business database's server killed -9, and stopped, mid-run and started again.

Either way: every captured row relayed once, 0 lost, 0 duplicate instances, each
business row written once (the audit trigger and the ledger agree), every written
column equal to the simulator's record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from syncd.embedded_mysql import LocalMySQL
from tests.mysql import SERVER_TIME_ZONE, MySQLDb, mysql_run, new_database

from .conftest import FaultEnv
from .harness import (
    FULL,
    Proxy,
    Report,
    assert_no_secrets,
    load,
    query,
    rng,
    timed,
    wait_settled,
)
from .mysql_harness import (
    MySQLLoader,
    check_mysql_invariants,
    database_options,
    password,
    prepare_mysql_business,
)


async def between_commits(dsn: str, db: MySQLDb) -> int:
    """Approvals whose write-back MariaDB committed (the ledger has them) and syncd's
    PostgreSQL did not: after a kill, those a retry must find and not write again."""
    ledger = await asyncio.to_thread(mysql_run, db.admin, "SELECT approval_id FROM syncd_writeback")
    written = await query(dsn, "SELECT id FROM syncd.approval WHERE written_back_at IS NOT NULL")
    return len({r["approval_id"] for r in ledger} - {r[0] for r in written})


@pytest.fixture
async def business(fault_env: FaultEnv, mysql_database: MySQLDb) -> AsyncIterator[MySQLDb]:
    await prepare_mysql_business(mysql_database)
    yield mysql_database
    assert_no_secrets(fault_env.log_text(), [password(mysql_database.daemon)])


@pytest.mark.slow
@pytest.mark.timeout(1800 if FULL else 120)
async def test_kill_9_under_load_with_the_business_side_in_mariadb(
    fault_env: FaultEnv, business: MySQLDb
) -> None:
    env = fault_env
    total = load(60, 1000)
    wanted = load(4, 20)
    report = Report("MariaDB business database: syncd run killed -9 at random moments")
    draw = rng()
    env.sim.faults.update(
        latency={"distribution": "uniform", "mean_ms": 150, "spread_ms": 120},
        endpoints=["workflow.create"],
    )
    in_flight = {"submitting": 0, "between_commits": 0, "stalled_kills": 0}
    # Every packet to MariaDB a little late: a write-back's transaction lasts long enough
    # for kills to land in it. PostgreSQL through a proxy too: half the kills come while
    # it is stalled, so write-backs MariaDB committed wait for syncd's own commit.
    pg_proxy = Proxy("127.0.0.1", env.pg.port)
    my_proxy = Proxy("127.0.0.1", sa.make_url(business.admin).port or 3306)
    async with pg_proxy, my_proxy, timed(report):
        my_proxy.delay, pg_proxy.delay = 0.005, 0.002
        options = database_options(business, my_proxy)
        fleet = env.fleet(pg_proxy.dsn(env.dsn), lease=12.0, **options)
        loader = MySQLLoader(business.app, total, batch=5, pause=0.25)
        await fleet.start("a")
        loader.start()
        deadline = time.monotonic() + (1200 if FULL else 60)
        while fleet.kills < wanted and time.monotonic() < deadline:
            await asyncio.sleep(draw.uniform(0.3, 2.5))  # a random moment
            submitting = await query(
                env.admin_dsn, "SELECT count(*) FROM syncd.approval WHERE state = 'submitting'"
            )
            in_flight["submitting"] += int(submitting[0][0]) > 0
            stalled = draw.random() < 0.5
            if stalled:
                pg_proxy.stall()
                await asyncio.sleep(draw.uniform(0.1, 0.5))
            await fleet.kill("a")
            in_flight["between_commits"] += await between_commits(env.admin_dsn, business)
            in_flight["stalled_kills"] += stalled
            pg_proxy.cut(count=False)  # the dead daemon's sessions end
            pg_proxy.resume()
            await fleet.start("a")
        await loader.wait(600 if FULL else 60)
        await wait_settled(env.admin_dsn, total, 900 if FULL else 60)
        assert await fleet.stop("a") == 0
    report.kills = fleet.kills
    report.kills_submitting = in_flight["submitting"]
    report.faults = {
        "create_latency_ms": "30-270",
        "packet_delay_ms": {"postgresql": 2, "mariadb": 5},
        "kills_while_postgresql_stalled": in_flight["stalled_kills"],
        "write_backs_between_the_two_commits": in_flight["between_commits"],
        "restarts": fleet.kills,
    }
    await check_mysql_invariants(env.admin_dsn, env.sim, report, business, total)
    report.emit()
    assert report.kills >= wanted


@pytest.fixture
async def own_server() -> AsyncIterator[LocalMySQL]:
    """A MariaDB server of this test's own, which it can kill and start again."""
    server = LocalMySQL(time_zone=SERVER_TIME_ZONE)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.mark.slow
@pytest.mark.timeout(900 if FULL else 120)
async def test_the_business_database_killed_and_stopped_mid_run(
    fault_env: FaultEnv, own_server: LocalMySQL
) -> None:
    env = fault_env
    total = load(60, 600)
    report = Report(
        "MariaDB business database killed -9, then stopped, mid-run; syncd's connections cut"
    )
    draw = rng()
    with new_database(own_server.url()) as db:
        await prepare_mysql_business(db)
        loader = MySQLLoader(db.app, total, batch=5, pause=0.5)
        outages = []
        async with Proxy("127.0.0.1", own_server.port) as proxy, timed(report):
            fleet = env.fleet(**database_options(db, proxy))
            await fleet.start("a")
            loader.start()
            for how in ("kill", "cut", "stop", "cut"):
                await asyncio.sleep(draw.uniform(0.5, 2.5))
                if how == "cut":  # every connection of syncd's reset, mid-statement or not
                    outages.append(f"cut {proxy.cut()} connections")
                    continue
                await asyncio.to_thread(own_server.kill if how == "kill" else own_server.stop)
                down = draw.uniform(1.0, 4.0)
                await asyncio.sleep(down)  # the outage itself lasts a random time
                await asyncio.to_thread(own_server.start)
                outages.append(f"{how} {down:.1f}s")
            await loader.wait(300 if FULL else 60)
            await wait_settled(env.admin_dsn, total, 600 if FULL else 60)
            assert fleet.replicas["a"].alive, "the daemon exited while MariaDB was down"
            assert await fleet.stop("a") == 0
        report.faults = {"mariadb_outages": outages, "loader_retries": loader.retries}
        await check_mysql_invariants(env.admin_dsn, env.sim, report, db, total)
        assert_no_secrets(env.log_text(), [password(db.daemon)])
    report.emit()

"""Retention of a business database's write-back ledger, on real servers, as the roles
of a deployment (syncd's MySQL user with the grants of docs/mysql.md, syncd_daemon in
PostgreSQL): a ledger row older than ``ledger_retention_days`` goes once syncd records
its approval written back; one whose approval still waits for its write-back stays,
however old; a young one stays; the stale-round guard (syncd_writeback_key) is kept
whole. Batches page through the rows kept."""

from __future__ import annotations

from datetime import timedelta

from syncd.app_ledger import ledger_retention
from syncd.clock import SystemClock
from syncd.db.admin_store import open_pool
from syncd.db.ledger_store import PostgresLedgerApprovals
from syncd.db.mysql import migrations as mysql_migrations
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.db.mysql.ledger import MySQLLedger
from syncd.db.mysql.url import MySQLDatabase
from syncd.pipeline.ledger_retention import LedgerRetention
from syncd.settings_kinds import WriteBackSettings
from tests.mysql import MySQLDb, mysql_run

from .conftest import Env
from .test_mysql_business import TABLE, WRITE_BACK, kind


def ledger(db: MySQLDb) -> list[str]:
    rows = mysql_run(db.admin, "SELECT business_key FROM syncd_writeback ORDER BY approval_id")
    return [r["business_key"] for r in rows]


async def test_old_ledger_rows_of_written_approvals_are_purged_and_no_other(
    env: Env, mysql_database: MySQLDb
) -> None:
    db = mysql_database
    mysql_run(db.app, TABLE)
    async with mysql_migrations.opened(MySQLDatabase("erp", db.app)) as engine:
        await mysql_migrations.apply(engine, "erp")
    db.grant(
        *footprint_grants(db.daemon_account),
        *write_back_grants(db.daemon_account, WriteBackSettings(**WRITE_BACK)),
    )
    keys = [str(env.submit_leave(days=1)) for _ in range(3)]
    for key in keys:
        mysql_run(db.app, "INSERT INTO leave_request (id) VALUES (%s)", key)
    settings = env.settings(
        databases={"erp": {"dsn": db.daemon, "ledger_retention_days": 30}},
        kinds={"leave": kind()},
    )
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
    assert ledger(db) == keys
    # The first two written 40 days ago; the second's approval waits for its write-back
    # (syncd's commit after MariaDB's was lost): a retry needs its ledger row.
    mysql_run(
        db.admin,
        "UPDATE syncd_writeback SET written_at = written_at - INTERVAL 40 DAY "
        " WHERE business_key IN (%s, %s)",
        *keys[:2],
    )
    env.sql("UPDATE syncd.approval SET written_back_at = NULL WHERE business_key = %s", keys[1])

    async with open_pool(env.daemon_dsn) as pool:
        job = ledger_retention(settings, pool, SystemClock(), owner="test")
        assert job is not None
        assert await job() == 1
        assert ledger(db) == keys[1:]
        assert await job() == 0  # nothing more to do

        # Written back now: it goes too, found past the kept young row in batches of one.
        env.sql(
            "UPDATE syncd.approval SET written_back_at = now() WHERE business_key = %s", keys[1]
        )
        engine = create_engine(settings.databases["erp"].plain("erp"))
        try:
            retention = LedgerRetention(
                {"erp": MySQLLedger("erp", engine, 10.0)},
                PostgresLedgerApprovals(pool, actor="test"),
                SystemClock(),
                {"erp": timedelta(days=30)},
                batch=1,
            )
            assert await retention.run_once() == 1
        finally:
            await engine.dispose()
    assert ledger(db) == keys[2:]
    guard = mysql_run(db.admin, "SELECT business_key, final FROM syncd_writeback_key")
    assert sorted((r["business_key"], r["final"]) for r in guard) == [(k, 1) for k in keys]


def test_no_duty_without_a_business_database_written_to(env: Env) -> None:
    assert ledger_retention(env.settings(), None, SystemClock(), owner="test") is None  # type: ignore[arg-type]

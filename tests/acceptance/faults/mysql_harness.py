"""The fault suite's business side on MariaDB/MySQL: the leave table in a business
database, captured into its ``syncd_outbox`` by syncd's capture trigger, an audit trigger
counting every write of the outcome columns, a loader inserting as the application, and
the checks of the README's guarantees against that database.

Roles as in a deployment: the application's MySQL user owns the database (the table, the
audit trigger, the footprint's migration); a DBA (the server's administrator) installs
the capture; syncd's MySQL user has only the grants of docs/mysql.md.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections import Counter
from datetime import UTC
from typing import Any

import psycopg
import sqlalchemy as sa

from syncd.db.mysql import capture
from syncd.db.mysql import migrations as mysql_migrations
from syncd.db.mysql.capture_ddl import MySQLCaptureSpec
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.db.mysql.url import MySQLDatabase
from syncd.settings_kinds import WriteBackSettings
from syncd.simulator import Simulator
from tests.mysql import MySQLDb, mysql_run

from .harness import (
    APPLICANTS,
    FINAL,
    PARKED,
    WRITE_BACK,
    Loader,
    Proxy,
    Report,
    _no_regression,
    _nothing_lost,
    _one_instance_each,
    dingtalk_record,
    expected_status,
)

TABLE = """
CREATE TABLE leave_request (
    id BIGINT PRIMARY KEY,
    applicant VARCHAR(64) NOT NULL,
    leave_type VARCHAR(20) NOT NULL DEFAULT '年假',
    start_date DATE NOT NULL DEFAULT '2026-01-10',
    end_date DATE NOT NULL DEFAULT '2026-01-11',
    days INT NOT NULL,
    reason TEXT,
    status VARCHAR(20) NOT NULL DEFAULT 'draft',
    approval_status VARCHAR(20), instance_id VARCHAR(64), decided_at DATETIME(6),
    dingtalk_status VARCHAR(32), result VARCHAR(32), approver VARCHAR(64), remark TEXT,
    business_id VARCHAR(64)
) DEFAULT CHARSET=utf8mb4
"""

#: Every write of the outcome columns, to prove each row is written exactly once. The
#: trigger runs as its definer (the application): syncd's user needs no grant on writes.
AUDIT = (
    "CREATE TABLE writes (leave_id BIGINT NOT NULL, approval_status VARCHAR(20), "
    "instance_id VARCHAR(64), at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)))",
    "CREATE TRIGGER audit AFTER UPDATE ON leave_request FOR EACH ROW "
    "IF NOT (NEW.approval_status <=> OLD.approval_status) "
    "   OR NOT (NEW.instance_id <=> OLD.instance_id) THEN "
    "  INSERT INTO writes (leave_id, approval_status, instance_id) "
    "  VALUES (NEW.id, NEW.approval_status, NEW.instance_id); "
    "END IF",
)

MYSQL_WRITE_BACK = WRITE_BACK.replace('"app.leave_request"', '"leave_request"')
WHEN = "NEW.status = 'submitted'"


def through(proxy: Proxy, url: str) -> str:
    """``url`` with the proxy's port."""
    return sa.make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


def database_options(db: MySQLDb, proxy: Proxy | None = None) -> dict[str, str]:
    """``write_config`` arguments for the leave kind in ``[databases.erp]``, reached
    through ``proxy`` if given."""
    dsn = through(proxy, db.daemon) if proxy else db.daemon
    extra = (
        f'[databases.erp]\ndsn = "{dsn}"\npoll_min = 0.02\npoll_max = 0.5\n'
        "connect_timeout = 3.0\nstatement_timeout = 10.0\n"
    )
    return {"kind_options": 'database = "erp"', "write_back": MYSQL_WRITE_BACK, "extra": extra}


def password(url: str) -> str:
    return sa.make_url(url).password or ""


async def prepare_mysql_business(db: MySQLDb) -> None:
    """The table and its audit as the application, syncd's footprint migrated by the
    application, syncd's user granted, the capture installed by the DBA."""
    for statement in (TABLE, *AUDIT):
        await asyncio.to_thread(mysql_run, db.app, statement)
    engine = create_engine(MySQLDatabase("erp", db.app))
    try:
        await mysql_migrations.apply(engine, "erp")
    finally:
        await engine.dispose()
    kinds = tomllib.loads(f"[kinds.leave.write_back]\n{MYSQL_WRITE_BACK}")["kinds"]
    config = WriteBackSettings(**kinds["leave"]["write_back"])
    account = db.daemon_account
    for grant in (*footprint_grants(account), *write_back_grants(account, config)):
        await asyncio.to_thread(mysql_run, db.admin, grant)
    engine = create_engine(MySQLDatabase("erp", db.admin))
    try:
        await capture.install(
            engine, MySQLCaptureSpec("leave", "leave_request", "id", WHEN), "+00:00"
        )
    finally:
        await engine.dispose()


class MySQLLoader(Loader):
    """Inserts ``total`` submitted leave requests (ids 1..total) in batches as the
    application (``dsn``: its ``mysql://`` URL), riding out a server that is down: a
    batch whose reply was lost is tried again and found there (its ids), so none is
    inserted twice."""

    async def insert(self, start: int, n: int) -> bool:
        rows = [
            (i + 1, APPLICANTS[i % len(APPLICANTS)], 1 + i % 4, f"load {i} 请假 🏖")
            for i in range(start, start + n)
        ]
        values = ", ".join("(%s, %s, %s, %s, 'submitted')" for _ in rows)
        statement = (
            f"INSERT INTO leave_request (id, applicant, days, reason, status) VALUES {values}"
        )
        params = [value for row in rows for value in row]
        try:
            await asyncio.to_thread(mysql_run, self.dsn, statement, *params)
        except Exception as exc:  # the server is down for a moment, or the reply lost
            return "Duplicate entry" in str(exc)
        return True


async def check_mysql_invariants(
    dsn: str, sim: Simulator, report: Report, db: MySQLDb, total: int
) -> None:
    """The README's guarantees, with the business side in MariaDB: every outbox row
    relayed once and consumed, nothing lost, one instance each, each business row
    written once (the audit trigger and the ledger), its columns DingTalk's record."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:

        async def rows(sql: str) -> list[tuple[Any, ...]]:
            return await (await conn.execute(sql)).fetchall()

        approvals = await _nothing_lost(rows, {})
        _one_instance_each(sim, approvals)
        await _no_regression(rows)
        relayed = await rows(
            "SELECT source_id, count(*) FROM syncd.outbox WHERE source_database = 'erp' "
            "GROUP BY source_id"
        )
        latency = await rows(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
            "       percentile_cont(0.95) WITHIN GROUP (ORDER BY s), max(s) "
            "  FROM (SELECT extract(epoch FROM written_back_at - captured_at)::float8 AS s "
            "          FROM syncd.approval WHERE written_back_at IS NOT NULL) t"
        )
    outbox = await asyncio.to_thread(
        mysql_run, db.admin, "SELECT id, consumed_at IS NOT NULL AS consumed FROM syncd_outbox"
    )
    assert len(outbox) == total, f"{len(outbox)} captured rows, want {total}"
    assert all(r["consumed"] for r in outbox), "business outbox rows left unconsumed"
    assert sorted(r[0] for r in relayed) == sorted(r["id"] for r in outbox)
    assert all(r[1] == 1 for r in relayed), "a business outbox row relayed twice"
    assert len(approvals) == total
    await _written_once_mysql(db, approvals, sim)
    counts = Counter(r[1] for r in approvals.values())
    report.approvals = len(approvals)
    report.approved = counts["approved"]
    report.rejected = counts["rejected"]
    report.parked = counts["invalid"] + counts["dead"]
    report.instances = len(sim.instances())
    report.latency_s = [round(v or 0.0, 1) for v in latency[0]]
    report.invariants = "hold"


async def _written_once_mysql(
    db: MySQLDb, approvals: dict[str, tuple[Any, ...]], sim: Simulator
) -> None:
    business = await asyncio.to_thread(
        mysql_run,
        db.admin,
        "SELECT l.id, l.days, l.approval_status, l.instance_id, l.dingtalk_status, l.result, "
        "       l.approver, l.remark, l.decided_at, l.business_id, "
        "       (SELECT count(*) FROM writes w WHERE w.leave_id = l.id) AS writes "
        "  FROM leave_request l",
    )
    ledger = {
        r["business_key"]: r
        for r in await asyncio.to_thread(
            mysql_run,
            db.admin,
            "SELECT business_key, approval_id, round, written, writes, status "
            "  FROM syncd_writeback",
        )
    }
    final = {key for key, a in approvals.items() if a[1] in FINAL}
    assert set(ledger) == final, "the ledger's keys are not the final approvals'"
    for row in business:
        key = str(row["id"])
        approval = approvals.get(key)
        if approval is None or approval[1] in PARKED:
            assert row["writes"] == 0 and row["approval_status"] is None, f"{key} written"
            continue
        want = expected_status(int(row["days"]))
        got = (row["approval_status"], row["writes"])
        assert got == (want, 1), f"row {key}: {got[0]} x{got[1]}, want {want} x1"
        entry = ledger[key]
        assert (entry["status"], entry["written"], entry["writes"], entry["round"]) == (
            approval[1],
            1,
            1,
            1,
        ), f"row {key}: ledger {entry}"
        assert row["instance_id"] == approval[2]
        record = dingtalk_record(sim, row["instance_id"])
        record[4] = record[4].astimezone(UTC).replace(tzinfo=None)  # DATETIME in UTC
        decided = row["decided_at"] and row["decided_at"].replace(second=0, microsecond=0)
        written = [
            row["dingtalk_status"],
            row["result"],
            row["approver"],
            row["remark"],
            decided,
            row["business_id"],
        ]
        assert written == record, f"row {key}: written {written}, DingTalk says {record}"

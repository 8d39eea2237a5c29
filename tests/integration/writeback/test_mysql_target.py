"""What ``MySQLTarget`` adds to the contract, on a real MariaDB/MySQL server: the ledger
across a crash between the business database's commit and syncd's, an older round's
outcome never over a newer round, explicit time zones, and a business database out of
reach."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.db.mysql import migrations, target
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.db.mysql.url import MySQLDatabase
from syncd.domain import ApprovalState, Final, Outcome
from syncd.errors import WriteBackError
from syncd.settings_kinds import WriteBackSettings
from tests.integration.writeback.conftest import NOW, STATUS, Rig, Syncd, new_key, run_sql
from tests.mysql import MySQLDb, mysql_run

MYSQL_RIGS = pytest.mark.parametrize("rig", ["mysql-table", "mysql-procedure"], indirect=True)

#: syncd's commit fails (a deferred trigger on syncd.approval raises at COMMIT) while
#: public.syncd_crash has a row: after the business database's commit, before syncd's.
CRASH_SQL = """
CREATE TABLE public.syncd_crash (why text);
CREATE FUNCTION public.syncd_crash() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.syncd_crash) THEN
        RAISE EXCEPTION 'syncd died before its commit';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER syncd_crash AFTER UPDATE ON syncd.approval
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.syncd_crash();
"""

FIXTURES = [HealthCheck.function_scoped_fixture]
FINAL = Final(ApprovalState.APPROVED, "COMPLETED", "agree", NOW)


@MYSQL_RIGS
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(crashes=st.integers(1, 3), batched=st.booleans())
async def test_a_crash_between_the_two_commits_writes_nothing_twice(
    rig: Rig, syncd: Syncd, crashes: int, batched: bool
) -> None:
    run_sql(syncd.admin, "DROP TABLE IF EXISTS public.syncd_crash CASCADE")
    run_sql(syncd.admin, "DROP FUNCTION IF EXISTS public.syncd_crash() CASCADE")
    run_sql(syncd.admin, CRASH_SQL)
    key = new_key()
    rig.add_row(key)
    approval = syncd.running(key)
    run_sql(syncd.admin, "INSERT INTO public.syncd_crash VALUES ('on')")
    for _ in range(crashes):  # the business row commits each time; syncd's side never does
        with pytest.raises(Exception, match="syncd died before its commit"):
            if batched:
                await syncd.apply.finish_many([(approval, FINAL)], NOW)
            else:
                await syncd.apply.finish(approval, FINAL, NOW)
        assert syncd.approval(approval.id)["state"] == "running"
    assert rig.writes(key) == [(1, STATUS["approved"])]
    run_sql(syncd.admin, "DELETE FROM public.syncd_crash")
    result = await syncd.apply.finish(approval, FINAL, NOW)
    assert result.moved and result.written
    assert rig.writes(key) == [(1, STATUS["approved"])]  # the ledger held it: once
    assert syncd.approval(approval.id)["written_back_at"] is not None
    assert syncd.notes(approval.id) == [f"written back to {rig.name}"]


@MYSQL_RIGS
async def test_the_ledger_keeps_an_older_rounds_outcome_off_a_newer_round(
    rig: Rig, syncd: Syncd
) -> None:
    key = new_key()
    old = syncd.running(key, 1)
    result = await syncd.apply.finish(old, FINAL, NOW, retry_at=NOW)  # no row yet: waits
    assert result.moved and not result.written
    rig.add_row(key)
    new = syncd.running(key, 2)
    assert await syncd.progress(NOW) == 1  # round 2 shows itself in the row
    # syncd's own state would hold round 1 back (the contract suite shows it); here it
    # forgot the write (restored from a backup taken before it): the ledger still knows.
    query = "UPDATE syncd.approval SET progress_written_at = NULL WHERE id = %s"
    run_sql(syncd.admin, query, new.id)
    assert (await syncd.retry(NOW + timedelta(minutes=1)))[old.id] is None
    assert rig.writes(key) == [(2, STATUS["submitted"])]  # round 1's outcome: not over it
    row = rig.row(key)
    assert row is not None and (row["status"], row["syncd_round"]) == ("SUBMITTED", 2)
    assert old.id not in syncd.unwritten()
    [ledger] = mysql_run(
        rig.db.admin,  # type: ignore[attr-defined]
        "SELECT round, written FROM syncd_writeback WHERE approval_id = %s",
        old.id,
    )
    assert (ledger["round"], ledger["written"]) == (1, 0)
    final = Final(ApprovalState.REJECTED, "COMPLETED", "refuse", NOW)
    assert (await syncd.apply.finish(new, final, NOW)).written
    assert rig.writes(key) == [(2, STATUS["submitted"]), (2, STATUS["rejected"])]


TIMES = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


def outcome(key: str, approval_id: int, finished_at: datetime) -> Outcome:
    return Outcome(
        approval_id=approval_id,
        kind="request",
        business_key=key,
        round=1,
        status="approved",
        dingtalk_status="COMPLETED",
        result="agree",
        instance_id="inst-1",
        business_id=None,
        finished_at=finished_at,
        remark="同意 ✅ 🎉",
        approver="经理",
        state_changed_at=finished_at,
    )


@pytest.fixture
async def zoned(mysql_database: MySQLDb) -> Any:
    """A business table with a DATETIME and a TIMESTAMP column, and syncd's target for it
    with ``time_zone = "+08:00"`` (the server's own zone is another)."""
    mysql_run(
        mysql_database.app,
        "CREATE TABLE ledger_entry (id VARCHAR(20) PRIMARY KEY, local_time DATETIME(6), "
        "instant TIMESTAMP(6) NULL, remark VARCHAR(50), approver VARCHAR(10)) "
        "DEFAULT CHARSET=utf8mb4",
    )
    async with migrations.opened(MySQLDatabase("erp", mysql_database.app)) as owner:
        await migrations.apply(owner, "erp")
    config = WriteBackSettings(
        table="ledger_entry",
        key_column="id",
        columns={
            "local_time": "finished_at",
            "instant": "state_changed_at",
            "remark": "remark",
            "approver": "approver",
        },
    )
    account = mysql_database.daemon_account
    mysql_database.grant(*footprint_grants(account), *write_back_grants(account, config))
    database = MySQLDatabase("erp", mysql_database.daemon, time_zone="+07:30")
    targets, engine = await target.build(database, {"request": config})
    yield targets["request"]
    await engine.dispose()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(at=TIMES, session=st.sampled_from(["+00:00", "+08:00", "-05:00"]))
async def test_times_are_written_in_the_configured_zone_whatever_the_servers(
    zoned: Any, mysql_database: MySQLDb, at: datetime, session: str
) -> None:
    key = str(new_key())
    mysql_run(mysql_database.app, "INSERT INTO ledger_entry (id) VALUES (%s)", key)
    await zoned.write(None, outcome(key, int(key), at))
    # A reader in any session zone: the TIMESTAMP is the instant, the DATETIME the
    # wall-clock time in syncd's configured zone (+07:30).
    [row] = mysql_run(
        mysql_database.admin,
        f"SELECT local_time, CONVERT_TZ(instant, @@session.time_zone, '{session}') AS instant, "
        "remark, approver FROM ledger_entry WHERE id = %s",
        key,
    )
    reader = timezone(timedelta(hours=int(session[:3]), minutes=int(session[0] + session[4:])))
    assert row["local_time"] == at.astimezone(timezone(timedelta(hours=7, minutes=30))).replace(
        tzinfo=None
    )
    [utc] = mysql_run(
        mysql_database.admin,
        "SELECT UNIX_TIMESTAMP(instant) AS epoch FROM ledger_entry WHERE id = %s",
        key,
    )
    assert float(utc["epoch"]) == pytest.approx(at.timestamp(), abs=1e-6)
    assert row["instant"] == at.astimezone(reader).replace(tzinfo=None)
    assert (row["remark"], row["approver"]) == ("同意 ✅ 🎉", "经理")


async def test_a_value_the_column_cannot_hold_is_refused_not_cut(zoned: Any, mysql_database):
    key = str(new_key())
    mysql_run(mysql_database.app, "INSERT INTO ledger_entry (id) VALUES (%s)", key)
    too_long = replace(outcome(key, 1, NOW), approver="名字太长了" * 3)
    with pytest.raises(WriteBackError, match=r"ledger_entry failed: Data too long"):
        await zoned.write(None, too_long)
    [row] = mysql_run(mysql_database.admin, "SELECT approver FROM ledger_entry WHERE id = %s", key)
    assert row["approver"] is None


async def test_a_business_database_out_of_reach_is_a_refusal_within_its_timeouts():
    secret = "pw-of-the-business-db"
    database = MySQLDatabase(
        "erp", f"mysql://syncd:{secret}@127.0.0.1:9/erp", connect_timeout=2, statement_timeout=3
    )
    engine = create_engine(database)
    write = target.TableWrite("t", "id", None, {}, False, {}, UTC)  # type: ignore[arg-type]
    unreachable = target.MySQLTarget("request", "t", "erp", engine, write, timeout=3)
    started = time.monotonic()
    try:
        with pytest.raises(WriteBackError) as info:
            await unreachable.write(None, outcome("1", 1, NOW))
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 5
    assert "writing to t" in str(info.value) and secret not in str(info.value)
    await asyncio.sleep(0)

"""End to end from a MariaDB/MySQL business database: a row the application inserts into
its ``syncd_outbox`` (as a user that may only INSERT there) becomes a DingTalk instance
in the simulator, and the outcome is written back into its business table there, every
written column equal to the simulator's record. No outbox row goes through syncd's own
PostgreSQL but by the relay, and no NOTIFY wakes anything."""

from __future__ import annotations

import json
from datetime import UTC

from syncd.db.mysql.grants import write_back_grants
from syncd.settings_kinds import WriteBackSettings
from tests.integration.ingest.test_mysql_relay import Business
from tests.mysql import MySQLDb, mysql_run

from .conftest import Env
from .test_mysql_business import TABLE, kind

COLUMNS = {
    "approval_status": "status",
    "instance_id": "instance_id",
    "decided_at": "finished_at",
    "waiting_for": "pending_approvers",
}
WRITE_BACK = {
    "table": "leave_request",
    "key_column": "id",
    "columns": COLUMNS,
    "status_map": {"approved": "APPROVED", "rejected": "REJECTED", "submitted": "已提交"},
    "progress": ["submitted"],
}
PAYLOAD = {
    "applicant": "u1",
    "leave_type": "年假",
    "start_date": "2026-01-10",
    "end_date": "2026-01-11",
    "days": 2,
    "reason": "回家 🏠",
}


async def test_a_row_inserted_into_mysql_becomes_an_instance_and_its_outcome_is_written_there(
    env: Env, mysql_database: MySQLDb
) -> None:
    mysql_run(mysql_database.app, TABLE)
    business = Business(mysql_database)  # footprint migrated, syncd's grants
    mysql_database.grant(
        *write_back_grants(mysql_database.daemon_account, WriteBackSettings(**WRITE_BACK))
    )
    mysql_run(mysql_database.app, "INSERT INTO leave_request (id) VALUES (42)")
    assert business.insert([{"kind": "leave", "key": "42", "payload": json.dumps(PAYLOAD)}])
    settings = env.settings(
        databases={"erp": {"dsn": mysql_database.daemon, "poll_min": 0.01, "poll_max": 0.5}},
        kinds={"leave": {**kind(), "write_back": WRITE_BACK}},
    )
    async with env.daemon(settings) as daemon:
        summary = await daemon.drain()
        assert summary.handled["relay_erp"] == 1 and summary.handled["submit"] == 1
        [instance] = env.sim.instances()
        assert instance.originator == "u1" and {"name": "请假事由", "value": "回家 🏠"} in [
            {"name": f["name"], "value": f["value"]} for f in instance.form
        ]
        [row] = mysql_run(mysql_database.admin, "SELECT * FROM leave_request")
        assert row["approval_status"] == "已提交" and row["instance_id"] == instance.instance_id
        await env.advance(120)
        await daemon.drain()
    [instance] = env.sim.instances()
    assert instance.status == "COMPLETED" and instance.finish_time is not None
    [row] = mysql_run(mysql_database.admin, "SELECT * FROM leave_request")
    assert row == {
        "id": 42,
        "approval_status": {"agree": "APPROVED", "refuse": "REJECTED"}[instance.result],
        "instance_id": instance.instance_id,
        "decided_at": instance.finish_time.astimezone(UTC).replace(tzinfo=None),
        "waiting_for": None,  # no task is running any more
        "remark": None,  # not mapped: never written
    }
    [consumed] = mysql_run(mysql_database.admin, "SELECT consumed_at FROM syncd_outbox")
    assert consumed["consumed_at"] is not None
    [(source, source_id)] = env.sql("SELECT source_database, source_id FROM syncd.outbox")
    assert (source, source_id) == ("erp", 1)

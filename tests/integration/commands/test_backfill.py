"""``syncd backfill`` on the command line: the simulator over loopback, instances started
in DingTalk before syncd ran imported into the business table once, however often run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.roles import DAEMON

from .conftest import config_data

LEAVE_IN = {
    "direction": "inbound",
    "process_code": "PROC-SIM-LEAVE",
    "inbound": {
        "table": "app.leave_in",
        "key_column": "instance_id",
        "columns": {"days": "天数", "reason": "请假事由", "leave_type": "请假类型"},
        "instance_columns": {"applicant": "originator"},
    },
}


def started(world, user, days):
    form = [
        {"name": "请假类型", "value": "年假"},
        {"name": '["开始时间","结束时间"]', "value": '["2026-01-10","2026-01-11"]'},
        {"name": "天数", "value": str(days)},
        {"name": "请假事由", "value": "家中有事"},
    ]
    return world.sim.start("PROC-SIM-LEAVE", user, form).instance_id


async def test_backfill_imports_what_started_before_and_again_nothing(world, cli, dingtalk):
    world.app_sql(
        "CREATE TABLE app.leave_in (instance_id text PRIMARY KEY, days numeric, reason text, "
        f"leave_type text, applicant text); GRANT SELECT, INSERT ON app.leave_in TO {DAEMON}"
    )
    ids = {started(world, user, n) for n, user in enumerate(["u2", "u3", "u5"], start=5)}
    cli.configure(config_data(world.daemon_dsn, dingtalk=dingtalk, kinds={"leave_in": LEAVE_IN}))
    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    code, out, err = await cli("backfill", "--kind", "leave_in", "--since", since)
    assert code == 0, out + err
    assert "leave_in: 3 instances listed, 3 new, 3 imports handled" in out
    rows = world.app_sql(
        "SELECT instance_id, days, reason, leave_type, applicant FROM app.leave_in"
    )
    assert {r[0] for r in rows} == ids
    assert {(int(r[1]), r[2], r[3], r[4]) for r in rows} == {
        (5, "家中有事", "年假", "u2"), (6, "家中有事", "年假", "u3"), (7, "家中有事", "年假", "u5")
    }  # fmt: skip
    code, out, _ = await cli("backfill", "--kind", "leave_in", "--since", since)
    assert code == 0 and "3 instances listed, 0 new" in out
    assert len(world.app_sql("SELECT 1 FROM app.leave_in")) == 3

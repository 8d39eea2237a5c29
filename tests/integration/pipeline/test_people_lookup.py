"""Kinds naming people by job number, mobile and email, end to end: the daemon as
``syncd_daemon`` on PostgreSQL, the simulator as DingTalk, the directory filled from the
simulator's world with ``PostgresDirectoryStore.save_users``.

The instance DingTalk records has the userIds the directory says (originator, department,
each approver step, cc); a mobile the directory does not have is asked of DingTalk once;
every look-up that cannot find exactly one person parks its round with its own code and
an exact message; before the first full sync the round waits, spending no attempt.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from syncd.people import DirectoryDepartment, DirectoryUser, normal
from syncd.simulator.world import User

from .conftest import Env

KIND: dict[str, Any] = {
    "process_code": "PROC-SIM-LEAVE",
    "originator": {"field": "applicant_no", "by": "job_number"},
    "dept_id": {"field": "department", "by": "name"},
    "form": {
        "请假类型": "leave_type",
        '["开始时间","结束时间"]': {"fields": ["start", "end"]},
        "天数": "days",
    },
    "approvers": [
        {"action": "OR", "field": "approver_mobiles", "by": "mobile"},
        {"action": "NONE", "users": ["HR1@Example.com"], "by": "email"},
    ],
    "cc": {"field": "cc_emails", "by": "email"},
}
REQUEST: dict[str, Any] = {
    "applicant_no": " e0006 ",  # u1, 张三, in 研发部 (2)
    "department": "研发部",
    "leave_type": "年假",
    "start": "2026-01-10",
    "end": "2026-01-11",
    "days": 2,
    "approver_mobiles": ["+86 138-0000-0001", "138 0000 0007"],  # manager1; u2 (not synced)
    "cc_emails": ["FINANCE1@example.com"],
}
NOT_IN_DIRECTORY = {"u2"}


def directory_user(user: User) -> DirectoryUser:
    def normal_or_none(by: str, value: str) -> str | None:
        return normal(by, value) if value else None  # type: ignore[arg-type]

    return DirectoryUser(
        user_id=user.user_id,
        name=user.name,
        job_number=normal_or_none("job_number", user.job_number),
        mobile=normal_or_none("mobile", user.mobile),
        email=normal_or_none("email", user.email),
        dept_ids=tuple(user.dept_ids),
    )


async def fill_directory(env: Env, runner: Any, *extra: DirectoryUser) -> None:
    """The simulator's organisation, as a full sync would leave it, less ``u2``."""
    store, now = runner.app.lookup, env.clock.now()
    world = env.sim.world
    await store.save_departments(
        [DirectoryDepartment(d.dept_id, d.name, d.parent_id) for d in world.departments], now
    )
    users = [directory_user(u) for u in world.users if u.user_id not in NOT_IN_DIRECTORY]
    await store.save_users(users + list(extra), now)
    await store.users_left([u.user_id for u in world.users if not u.active], now)
    finish_sync(env, now)


def finish_sync(env: Env, at: Any) -> None:
    env.sql(
        "INSERT INTO syncd.directory_sync (trigger, started_at, finished_at, state) "
        "VALUES ('first', %s, %s, 'done')",
        at - timedelta(minutes=1),
        at,
    )


def submit(env: Env, key: str, **changes: Any) -> None:
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, payload) VALUES ('people', %s, %s)",
        key,
        Jsonb({**REQUEST, **changes}),
    )


def approval(env: Env, key: str) -> dict[str, Any]:
    columns = (
        "id, state, originator, originator_user_id, dept_id, attempts, calls_spent, "
        "last_error_code, last_error_message"
    )
    [row] = env.sql(f"SELECT {columns} FROM syncd.approval WHERE business_key = %s", key)
    return dict(zip([c.strip() for c in columns.split(",")], row, strict=True))


def lookups(runner: Any) -> dict[tuple[str, str], float]:
    return {
        (s.labels["by"], s.labels["outcome"]): s.value
        for metric in runner.app.lookup_metrics.lookups.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.value
    }


async def test_people_named_every_way_become_the_instances_user_ids(env: Env) -> None:
    settings = env.settings(kinds={"people": KIND})
    async with env.daemon(settings) as daemon:
        await fill_directory(env, daemon)
        submit(env, "r1")
        await daemon.drain()
        [instance] = env.sim.instances(process_code="PROC-SIM-LEAVE")
        assert (instance.originator, instance.dept_id) == ("u1", 2)
        assert [n.approvers for n in instance.nodes] == [["manager1", "u2"], ["hr1"]]
        assert instance.cc == ["finance1"]
        assert lookups(daemon) == {
            ("job_number", "found"): 1,
            ("name", "found"): 1,
            ("mobile", "found"): 1,
            ("mobile", "by_mobile_api"): 1,
            ("email", "found"): 2,
        }
    row = approval(env, "r1")
    assert row["state"] == "running" and row["originator"] == " e0006 "
    assert (row["originator_user_id"], row["dept_id"]) == ("u1", 2)
    notes = env.sql(
        "SELECT message FROM syncd.approval_event WHERE approval_id = %s AND event_type = 'note'",
        row["id"],
    )
    assert notes == [
        (
            "originator job_number e0006 → u1 (张三); "
            "approvers step 1 mobile +86 138****0001 → manager1 (王经理); "
            "approvers step 1 mobile 138****0007 → u2 (李四) (asked DingTalk by mobile); "
            "approvers step 2 email H***@Example.com → hr1 (陈人事); "
            "cc email F***@example.com → finance1 (赵财务); "
            "dept_id name 研发部 → 2",
        )
    ]
    calls = env.sql(
        "SELECT endpoint FROM syncd.approval_event WHERE approval_id = %s AND event_type = "
        "'call' ORDER BY id",
        row["id"],
    )
    assert [c for (c,) in calls if c != "schema"] == ["user_by_mobile", "user_get", "create"]
    assert row["calls_spent"] == len(calls)
    assert env.sql("SELECT count(*) FROM syncd.usage WHERE purpose = 'lookup'") == [(0,)]
    assert env.sql("SELECT user_id, mobile FROM syncd.dingtalk_user WHERE user_id = 'u2'") == [
        ("u2", "+8613800000007")
    ]


async def test_a_mobile_nobody_has_is_asked_once_until_the_next_full_sync(env: Env) -> None:
    settings = env.settings(kinds={"people": KIND})
    nobody = ["13999990000"]
    async with env.daemon(settings) as daemon:
        await fill_directory(env, daemon)
        submit(env, "a1", approver_mobiles=nobody)
        submit(env, "a2", approver_mobiles=["+86 139-9999-0000"])
        await daemon.drain()
        assert env.sim.calls["oapi.user.getbymobile"] == 1
        for key in ("a1", "a2"):
            assert approval(env, key)["last_error_code"] == "person_unknown"
        await env.advance(3600)
        finish_sync(env, env.clock.now())
        submit(env, "a3", approver_mobiles=nobody)
        await daemon.drain()
        assert env.sim.calls["oapi.user.getbymobile"] == 2
    asked = env.sql("SELECT mobile_hash, user_id FROM syncd.directory_mobile_ask")
    assert len(asked) == 1 and asked[0][1] is None and "13999990000" not in asked[0][0]


async def test_each_failed_look_up_parks_its_round_with_an_exact_message(env: Env) -> None:
    twin = DirectoryUser("twin", "双胞胎", mobile="+8613800000008", dept_ids=(2,))  # u3's
    settings = env.settings(kinds={"people": KIND})
    async with env.daemon(settings) as daemon:
        await fill_directory(env, daemon, twin)
        submit(env, "unknown", applicant_no="E9999")
        submit(env, "ambiguous", approver_mobiles=["13800000008"])
        submit(env, "departed", applicant_no="E0012")  # left1 has left
        submit(env, "no_dept", department="研发部/后端组")
        submit(env, "not_member", applicant_no="E0009")  # u4 is in 财务部
        submit(env, "bad_email", cc_emails=["finance1 at example.com"])
        await daemon.drain()
    parked = {key: approval(env, key) for key in ("unknown", "ambiguous", "departed")}
    parked |= {key: approval(env, key) for key in ("no_dept", "not_member", "bad_email")}
    assert {k: (r["state"], r["last_error_code"]) for k, r in parked.items()} == {
        "unknown": ("invalid", "person_unknown"),
        "ambiguous": ("invalid", "person_ambiguous"),
        "departed": ("invalid", "person_departed"),
        "no_dept": ("invalid", "department_unknown"),
        "not_member": ("invalid", "not_in_department"),
        "bad_email": ("invalid", "bad_identifier"),
    }
    messages = {k: r["last_error_message"] for k, r in parked.items()}
    assert messages["unknown"] == (
        "originator: nobody in the DingTalk directory has job number E9999 (payload path "
        "'applicant_no'); correct the value, or if they joined after the latest full sync, "
        "retry after the next one (syncd directory status)"
    )
    assert messages["ambiguous"] == (
        "approvers step 1: 2 people in the DingTalk directory have mobile 138****0008 "
        "(payload path 'approver_mobiles'): twin (双胞胎), u3 (王五); name them by what "
        "only one has (a job number or a userId), or correct the directory"
    )
    assert messages["departed"] == (
        "originator: only someone who has left the organisation had job number E0012 "
        "(payload path 'applicant_no'): left1 (吴九); name someone present"
    )
    assert messages["no_dept"] == (
        "dept_id: no department in the DingTalk directory is named '研发部/后端组' (payload "
        "path 'department'); write its name, or its path of names from the top such as "
        "'研发部/后端组'"
    )
    assert messages["not_member"] == (
        "dept_id: the originator u4 (赵六) is not a member of department 2 in the DingTalk "
        "directory; name a department they belong to"
    )
    assert messages["bad_email"].startswith("outbox row ") and messages["bad_email"].endswith(
        ": cc: 'f***' is not an email address (payload path 'cc_emails'); write an email "
        "address such as name@example.com, or set by to what the value is"
    )
    assert env.sim.instances() == []
    [(count,)] = env.sql(
        "SELECT count(*) FROM syncd.approval WHERE instance_id IS NULL AND state = 'invalid'"
    )
    assert count == 6


async def test_a_round_waits_for_the_first_full_sync_without_spending_attempts(
    env: Env,
) -> None:
    settings = env.settings(kinds={"people": KIND})
    async with env.daemon(settings) as daemon:
        submit(env, "w1")
        await daemon.drain()
        row = approval(env, "w1")
        assert (row["state"], row["attempts"], row["last_error_code"]) == (
            "pending",
            0,
            "directory_not_synced",
        )
        assert row["last_error_message"] == (
            "waiting for the directory's first full sync (syncd directory status)"
        )
        assert env.sim.instances() == []
        await fill_directory(env, daemon)
        await env.advance(120)
        await daemon.drain()
        [instance] = env.sim.instances()
        assert instance.originator == "u1"
    assert approval(env, "w1")["state"] == "running"

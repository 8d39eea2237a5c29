"""Mapping, write-back and result capture features of the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from syncd.dingtalk.events import InboundEvent, make_event
from syncd.domain import TaskRecord
from syncd.errors import ConfigError

from .conftest import APP_KEY, LEAVE_KIND

# The application's procedure runs as its owner (the daemon may only call it): its
# search_path is pinned and every name in it qualified.
PROCEDURE = """
CREATE TABLE app.outcomes (business_key text, outcome jsonb);
CREATE PROCEDURE app.on_leave(business_key text, outcome jsonb) LANGUAGE sql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO app.outcomes VALUES (business_key, outcome);
$$;
"""


async def test_stored_procedure_write_back_receives_the_outcome(env):
    env.app_sql(PROCEDURE)
    kind = {**LEAVE_KIND, "write_back": {"procedure": "app.on_leave"}}
    env.grant_write_back(kind)
    key = env.submit_leave(days=1)
    async with env.daemon(env.settings(kinds={"leave": kind})) as daemon:
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
    [(business_key, outcome)] = env.sql("SELECT business_key, outcome FROM app.outcomes")
    assert business_key == str(key)
    assert outcome["status"] == "approved" and outcome["result"] == "agree"
    assert outcome["approver"] == "hr1" and outcome["instance_id"]


@pytest.mark.parametrize(
    ("write_back", "message"),
    [
        (
            {"table": "app.nope", "key_column": "id", "columns": {"x": "status"}},
            "table 'app.nope' does not exist",
        ),
        (
            {"table": "app.leave_request", "key_column": "id", "columns": {"nope": "status"}},
            "has no column 'nope'",
        ),
        (
            {"table": "app.leave_request", "key_column": "id", "columns": {"days": "status"}},
            "cannot hold 'status'",
        ),
        ({"procedure": "app.missing"}, "procedure 'app.missing' does not exist"),
    ],
)
async def test_write_back_targets_are_checked_at_start(env, write_back, message):
    kind = {**LEAVE_KIND, "write_back": write_back}
    with pytest.raises(ConfigError, match=message):
        async with env.daemon(env.settings(kinds={"leave": kind})):
            pass


async def test_failed_write_back_is_retried_and_shown_until_it_succeeds(env):
    key = env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        env.app_sql("DELETE FROM app.leave_request")  # the business row vanished
        await env.advance(120)
        await daemon.drain()
        [(state, error)] = env.sql("SELECT state, last_error_message FROM syncd.unwritten")
        assert state == "approved" and f"no row in app.leave_request where id = '{key}'" in error
        env.app_sql(
            "INSERT INTO app.leave_request (id, applicant, leave_type, start_date, end_date, "
            "days, status) VALUES (%s, 'u1', '年假', '2026-01-10', '2026-01-11', 1, 'x')",
            key,
        )
        await env.advance(60)
        await daemon.drain()
    assert env.sql("SELECT count(*) FROM syncd.unwritten") == [(0,)]
    assert env.sql("SELECT approval_status FROM app.leave_request") == [("APPROVED",)]


#: Every rewrite of an approval's row, in a table of the test's own (the trigger runs as
#: its owner, so the daemon needs no grant on it).
COUNT_REWRITES = """
CREATE TABLE public.rewrites (approval_id bigint, state text);
CREATE FUNCTION public.count_rewrite() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.rewrites VALUES (NEW.id, NEW.state);
    RETURN NULL;
END $$;
CREATE TRIGGER count_rewrite AFTER UPDATE ON syncd.approval
    FOR EACH ROW EXECUTE FUNCTION public.count_rewrite();
"""


async def test_a_task_ending_with_its_instance_rewrites_the_approval_once(env):
    """DingTalk sends the approver's task end and the instance's end together: in one
    batch, the task is recorded, the link a start event told is kept, the outcome is
    written back, and the approval's row is rewritten once, by the finish."""
    key = env.submit_leave(days=2)
    async with env.daemon(env.settings(events={"stream": False})) as daemon:
        await daemon.drain()
        [(approval_id, instance_id)] = env.sql("SELECT id, instance_id FROM syncd.approval")
        env.sql(COUNT_REWRITES)
        link = f"https://aflow.dingtalk.com/approval?procInsId={instance_id}&told=start"
        said = {"processInstanceId": instance_id}
        events = [
            make_event("callback", "bpms_instance_change", said | {"type": "start", "url": link}),
            make_event(
                "callback",
                "bpms_task_change",
                said | {"type": "finish", "result": "agree", "taskId": 77, "staffId": "hr1"},
            ),
            make_event(
                "callback", "bpms_instance_change", said | {"type": "finish", "result": "agree"}
            ),
        ]
        await daemon.app.inbox.put_many(events)
        assert await daemon.app.apply.run_once() == len(events)
    assert env.sql("SELECT * FROM public.rewrites") == [(approval_id, "approved")]
    row = env.sql("SELECT state, url, written_back_at IS NOT NULL, approver FROM syncd.approval")
    assert row == [("approved", link, True, "hr1")]
    task = "SELECT user_id, status, result FROM syncd.task WHERE record_key = '77'"
    assert env.sql(task) == [("hr1", "COMPLETED", "AGREE")]
    assert env.sql("SELECT count(*) FROM syncd.inbox WHERE processed_at IS NULL") == [(0,)]
    business = "SELECT approval_status FROM app.leave_request WHERE id = %s"
    assert env.app_sql(business, key) == [("APPROVED",)]


async def test_one_failed_write_back_in_a_batch_of_outcomes_holds_up_no_other(env):
    """Outcomes claimed together are finished together; when one write-back fails, each is
    finished on its own: the others are written, that one waits in syncd.unwritten."""
    keys = [env.submit_leave(days=9) for _ in range(3)]
    settings = env.settings(events={"stream": False})
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        instances = [i for (i,) in env.sql("SELECT instance_id FROM syncd.approval ORDER BY id")]

        def finish(instance_id: str, n: int) -> InboundEvent:
            payload = {"processInstanceId": instance_id, "type": "finish", "result": "agree"}
            return make_event("callback", "bpms_instance_change", payload, f"finish-{n}")

        events = [finish(i, n) for n, i in enumerate(instances)] + [finish(instances[0], 9)]
        for healthy in (True, False):
            if not healthy:
                env.app_sql("DELETE FROM app.leave_request WHERE id = %s", keys[1])
                events = [finish(i, 10 + n) for n, i in enumerate(instances)]
            await daemon.app.inbox.put_many(events)
            assert await daemon.app.apply.run_once() == len(events)
            if healthy:  # one batch: three transitions and three marks, all together
                assert env.sql("SELECT count(*) FROM syncd.unwritten") == [(0,)]
                env.sql("UPDATE syncd.approval SET state = 'running', written_back_at = NULL")
        [(unwritten,)] = env.sql("SELECT business_key FROM syncd.unwritten")
        assert unwritten == str(keys[1])
    rows = env.sql("SELECT id, approval_status FROM app.leave_request ORDER BY id")
    assert rows == [(keys[0], "APPROVED"), (keys[2], "APPROVED")]
    assert env.sql("SELECT count(*) FROM syncd.inbox WHERE processed_at IS NULL") == [(0,)]
    moved = env.sql(
        "SELECT approval_id, count(*) FROM syncd.approval_event "
        "WHERE to_state = 'approved' GROUP BY approval_id ORDER BY approval_id"
    )
    assert [n for _, n in moved] == [2, 2, 2]


async def test_explicit_approvers_and_cc_come_from_the_payload(env):
    env.app_sql("ALTER TABLE app.leave_request ADD COLUMN approver text DEFAULT 'manager2'")
    kind = {
        **LEAVE_KIND,
        "approvers": [{"action": "NONE", "field": "approver"}],
        "cc": {"users": ["hr1"], "position": "FINISH"},
    }
    env.submit_leave(days=9)
    async with env.daemon(env.settings(kinds={"leave": kind})) as daemon:
        await daemon.drain()
    [instance] = env.sim.instances()
    assert [n.approvers for n in instance.nodes] == [["manager2"]]
    assert instance.cc == ["hr1"]


async def test_failed_pushes_are_swept_from_dingtalks_list(env):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("nobody listens", request=request)

    env.sim.callbacks.set_client(httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    env.sim.callbacks.set_url(APP_KEY, "http://unreachable.example/callback")
    settings = env.settings(events={"stream": False}, polling={"quiet_after": 86400})
    env.submit_leave(days=1)
    async with env.daemon(settings) as daemon:
        await daemon.drain()
        for _ in range(4):  # the decision, then DingTalk's retries after 10 s and 30 s
            await env.advance(40)
        assert env.sim.events_failed
        assert await daemon.sweep() > 0
        await daemon.drain()
    assert env.sql("SELECT DISTINCT channel FROM syncd.inbox") == [("failed_list",)]
    assert env.sql("SELECT state FROM syncd.approval") == [("approved",)]


async def test_quota_pause_ends_by_itself_when_dingtalks_month_rolls_over(env):
    env.sim.faults.update(monthly_quota=2)
    env.submit_leave(days=1)
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        pause = await daemon.app.pause()
        assert pause is not None and pause.until is not None
        env.sim.faults.update(monthly_quota=None)
        env.clock.advance((pause.until - env.clock.now()).total_seconds() + 1)
        assert await daemon.app.pause() is None
        await daemon.drain()
    assert env.sql("SELECT count(*) FROM syncd.approval WHERE state = 'running'") == [(2,)]


async def test_poll_interval_grows_with_the_age_of_a_quiet_instance(env):
    env.submit_leave(days=9)  # left for a person: it stays running
    async with env.daemon() as daemon:
        await daemon.drain()
        gaps = []
        for _ in range(4):
            [(due,)] = env.sql("SELECT next_poll_at FROM syncd.approval")
            env.clock.advance((due - env.clock.now()).total_seconds() + 1)
            await daemon.drain()
            [(after,)] = env.sql("SELECT next_poll_at FROM syncd.approval")
            gaps.append(after - env.clock.now())
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0] >= timedelta(seconds=59)
    [(polls,)] = env.sql("SELECT count(*) FROM syncd.approval_event WHERE endpoint = 'get'")
    assert polls == 4


@pytest.mark.parametrize("late_start", [False, True])
async def test_a_batch_of_task_events_records_each_task_once_with_all_it_said(env, late_start):
    """Whatever the order of a task's events in one batch: a task that ended does not
    start again, and its times, once known, stay (as across batches)."""
    env.submit_leave(days=2)
    async with env.daemon() as daemon:
        await daemon.drain()
        [(approval_id, instance_id)] = env.sql("SELECT id, instance_id FROM syncd.approval")
        approval = await daemon.app.cancel_store.approval_by_id(approval_id)
        assert approval is not None
        t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        started = TaskRecord("task", "t-1", user_id="manager1", status="RUNNING", started_at=t0)
        finished = TaskRecord(
            "task", "t-1", status="COMPLETED", result="AGREE", finished_at=t0 + timedelta(hours=1)
        )
        other = TaskRecord("task", "t-2", user_id="hr1", status="RUNNING")
        touches = [(approval, [started]), (approval, [finished, other])]
        if late_start:  # the start event of t-1 comes after its finish event
            touches = [(approval, [finished]), (approval, [started, other])]
        await daemon.app.apply_store.touch_many(
            touches,
            env.clock.now(),
            next_poll_at=env.clock.now() + timedelta(minutes=5),
        )
    rows = env.sql(
        "SELECT record_key, user_id, status, result, started_at, finished_at FROM syncd.task"
        " WHERE instance_id = %s AND record_key LIKE 't-%%' ORDER BY record_key",
        instance_id,
    )
    assert rows == [
        ("t-1", "manager1", "COMPLETED", "AGREE", t0, t0 + timedelta(hours=1)),
        ("t-2", "hr1", "RUNNING", None, None, None),
    ]

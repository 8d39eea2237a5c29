"""Live status end to end: a parked round shows why in its business row, and syncd's own
writes into the column a capture trigger watches never submit the row again."""

from __future__ import annotations

from typing import Any

from syncd.db.admin_store import AdminStore
from syncd.dingtalk.events import make_event
from syncd.dingtalk.models import instance_links
from tests.integration.pipeline.conftest import LEAVE_KIND

CORP = "dingsimcorp0001"
#: The capture of the leave table submits when ``status`` becomes 'submitted': this
#: write-back writes that very column, and that very value for a submitted round.
LEAVE = {
    **LEAVE_KIND,
    "write_back": {
        "table": "app.leave_request",
        "key_column": "id",
        "columns": {
            "status": "status",
            "instance_id": "instance_id",
            "problem": "reason",
            "link": "url",
            "waiting_for": "pending_approvers",
        },
        "status_map": {
            "submitted": "submitted",
            "running": "in_approval",
            "invalid": "needs_fixing",
            "dead": "failed",
            "approved": "approved",
            "rejected": "rejected",
            "canceled": "withdrawn",
        },
        "progress": True,
    },
}


def leave_row(env: Any, key: int) -> tuple[Any, ...]:
    [row] = env.app_sql(
        "SELECT status, instance_id, problem, link, waiting_for FROM app.leave_request "
        "WHERE id = %s",
        key,
    )
    return tuple(row)


def rounds(env: Any, key: int) -> list[tuple[Any, ...]]:
    return list(
        env.sql(
            "SELECT round, state, instance_id, last_error_message FROM syncd.approval "
            "WHERE kind = 'leave' AND business_key = %s ORDER BY round",
            str(key),
        )
    )


async def deliver(env: Any, daemon: Any) -> None:
    """Every event the simulator emitted reaches syncd (again: duplicates change nothing);
    task changes are written a moment later."""
    events = [make_event("stream", e.event_type, e.data, e.event_id) for e in env.sim.events]
    await daemon.app.inbox.put_many(events)
    await daemon.drain()
    env.clock.advance(2)
    await daemon.drain()


def prepare(env: Any) -> None:
    env.app_sql(
        "ALTER TABLE app.leave_request ADD COLUMN problem text, ADD COLUMN link text, "
        "ADD COLUMN waiting_for text"
    )
    env.grant_write_back(LEAVE)


async def test_a_retried_round_writes_submitted_without_submitting_again(env):
    prepare(env)
    config = env.settings(
        kinds={"leave": LEAVE},
        dingtalk={"corp_id": CORP},
        pipeline={"max_attempts": 1},
        events={"stream": False},
    )
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
    key = env.submit_leave(days=5)  # no rule of the simulator decides it
    async with env.daemon(config) as daemon:
        await daemon.drain()
        await env.advance(11)
        await daemon.drain()
        [(_, state, _, reason)] = rounds(env, key)
        assert state == "dead" and reason
        assert leave_row(env, key) == ("failed", None, reason, None, None)

        env.sim.faults.reset()
        [(approval_id,)] = env.sql(
            "SELECT id FROM syncd.approval WHERE business_key = %s", str(key)
        )
        retried = await AdminStore(daemon.app.pool, actor="cli:test").retry(
            env.clock.now(), [approval_id]
        )
        assert [brief.id for brief in retried.moved] == [approval_id]
        await daemon.drain()  # 'failed' -> 'submitted', the value the capture waits for
        [(_, state, instance_id, _)] = rounds(env, key)
        link = instance_links(CORP, instance_id).url
        assert state == "running"
        assert leave_row(env, key) == ("submitted", instance_id, None, link, None)
        await deliver(env, daemon)  # in approval, waiting for its manager
        instance = env.sim.instance(instance_id)
        waiting = ",".join(sorted(t.user_id for t in instance.running_tasks()))
        [url] = [e.data["url"] for e in env.sim.events if e.event_type == "bpms_instance_change"]
        assert leave_row(env, key) == ("in_approval", instance_id, None, url, waiting)
        env.sim.engine.act(instance, None, True, "")
        env.sim.engine.act(instance, None, True, "")
        await deliver(env, daemon)
    assert leave_row(env, key)[:3] == ("approved", instance_id, None)
    # One outbox row, one round: syncd's writes never captured.
    assert env.sql("SELECT count(*) FROM syncd.outbox") == [(1,)]
    assert len(rounds(env, key)) == 1
    # The same change by the application does submit.
    env.app_sql("UPDATE app.leave_request SET status = 'draft' WHERE id = %s", key)
    env.app_sql("UPDATE app.leave_request SET status = 'submitted' WHERE id = %s", key)
    assert env.sql("SELECT count(*) FROM syncd.outbox") == [(2,)]


async def test_a_row_syncd_cannot_submit_shows_why(env):
    prepare(env)
    config = env.settings(kinds={"leave": LEAVE}, dingtalk={"corp_id": CORP})
    key = env.submit_leave(applicant="left1")  # DingTalk refuses a user who left
    async with env.daemon(config) as daemon:
        await daemon.drain()
    [(_, state, _, reason)] = rounds(env, key)
    assert state == "invalid" and reason
    assert leave_row(env, key) == ("needs_fixing", None, reason, None, None)

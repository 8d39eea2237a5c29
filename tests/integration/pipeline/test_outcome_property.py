"""The outcome written back equals DingTalk's record of the instance, whatever happens to
the events on the way: any order, duplicates, losses, and a replica that dies holding
some of them.

Each example drives real instances through the simulator (approvers of an OR node and
an AND node agreeing or refusing, comments, revokes, some at the same moment), then
delivers the events that DingTalk emitted to syncd's inbox as a generated plan says, with
a crash point where a replica claims a prefix of them and dies. When everything has settled
(leases expired, quiet instances polled), every written column of each business row is
compared with the simulator's instance: status, DingTalk status, result, approver,
remark, finish time, instance id and business id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.demo.config import KINDS
from syncd.dingtalk.events import make_event
from syncd.simulator.state import Instance

PROCESS = "PROC-SIM-EXPENSE"
COLUMNS = {
    "approval_status": "status",
    "dingtalk_status": "dingtalk_status",
    "result": "result",
    "approver": "approver",
    "remark": "remark",
    "decided_at": "finished_at",
    "instance_id": "instance_id",
    "business_id": "business_id",
}
STATUS = {"approved": "APPROVED", "rejected": "REJECTED", "canceled": "CANCELED"}
EXPENSE = {
    **KINDS["expense"],
    "write_back": {
        "table": "app.expense_claim",
        "key_column": "id",
        "columns": COLUMNS,
        "status_map": STATUS,
    },
}
LEASE = 300
REMARKS = st.sampled_from(["", "", "同意", "ok", "金额核对无误 ✅", "x" * 300])


@dataclass(frozen=True)
class Step:
    """One thing a person does to the instance: act (``agree``), comment, or revoke."""

    what: str  # "agree", "refuse", "comment", "revoke"
    who: int  # which of the running tasks' approvers
    remark: str
    after: int  # seconds since the previous step (0: at the same moment)


steps = st.builds(
    Step,
    what=st.sampled_from(["agree", "agree", "agree", "refuse", "comment", "revoke"]),
    who=st.integers(0, 1),
    remark=REMARKS,
    after=st.integers(0, 90),
)


@dataclass(frozen=True)
class Plan:
    scripts: list[list[Step]]
    copies: list[int]  # per emitted event, in emission order: 0 lost, 1, or 2 (duplicate)
    order: list[int]  # a permutation of the delivered events' positions
    crash: int  # a replica claims this many of the first delivered events, then dies


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    scripts = draw(st.lists(st.lists(steps, max_size=5), min_size=1, max_size=3))
    # Each instance emits at most ~16 events; draw enough choices for any script.
    copies = draw(st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=60, max_size=60))
    order = draw(st.permutations(range(120)))
    crash = draw(st.integers(0, 40))
    return Plan(scripts, copies, list(order), crash)


def _play(env: Any, instance: Instance, script: list[Step]) -> None:
    """Act on the instance as the script says, then decide whatever is still open."""
    for step in [*script, Step("agree", 0, "", 5), Step("agree", 0, "", 5)] * 3:
        if instance.status != "RUNNING":
            return
        env.clock.advance(step.after)
        running = instance.running_tasks()
        user = running[step.who % len(running)].user_id
        if step.what == "comment":
            env.sim.engine.comment(instance, user, step.remark or "备注")
        elif step.what == "revoke":
            env.sim.terminate(instance.instance_id, remark=step.remark)
        else:
            env.sim.engine.act(instance, user, step.what == "agree", step.remark)


def expected(instance: Instance) -> dict[str, Any]:
    """What DingTalk's record says, as each column should hold it."""
    approver, remark = instance.last_decision()
    status = {"agree": "approved", "refuse": "rejected"}.get(instance.result or "", "canceled")
    assert instance.finish_time is not None
    return {
        "approval_status": STATUS[status],
        "dingtalk_status": instance.status,
        "result": instance.result or None,
        "approver": approver,
        "remark": remark,
        "decided_at": instance.finish_time.replace(second=0, microsecond=0),
        "instance_id": instance.instance_id,
        "business_id": instance.business_id,
    }


def _submit(env: Any) -> int:
    [(key,)] = env.app_sql(
        "INSERT INTO app.expense_claim (applicant, amount, category, spent_on, note, status) "
        "VALUES ('u1', 5000, '差旅', '2026-01-10', 'trip', 'submitted') RETURNING id"
    )
    return int(key)


@pytest.fixture
def world(env):
    env.app_sql(
        "ALTER TABLE app.expense_claim ADD COLUMN dingtalk_status text, "
        "ADD COLUMN result text, ADD COLUMN approver text, ADD COLUMN remark text, "
        "ADD COLUMN business_id text"
    )
    env.grant_write_back(EXPENSE)
    return env


@pytest.mark.timeout(300)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans())
async def test_written_outcome_equals_dingtalk_record(world, plan):
    env = world
    config = env.settings(
        kinds={"expense": EXPENSE},
        events={"stream": False},
        polling={"quiet_after": 1800},
        pipeline={"lease_seconds": LEASE},
    )
    keys = [_submit(env) for _ in plan.scripts]
    async with env.daemon(config) as daemon:
        await daemon.drain()
        rows = env.sql(
            "SELECT business_key, instance_id FROM syncd.approval WHERE business_key = ANY(%s)",
            [str(k) for k in keys],
        )
        instances = {int(key): env.sim.instance(instance_id) for key, instance_id in rows}
        assert len(instances) == len(keys)
        first_event = len(env.sim.events)
        for key, script in zip(keys, plan.scripts, strict=True):
            _play(env, instances[key], script)
        emitted = env.sim.events[first_event:]
        sent = [e for n, e in enumerate(emitted) for _ in range(plan.copies[n % 60])]
        order = [i for i in plan.order if i < len(sent)]
        events = [
            make_event("stream", e.event_type, e.data, e.event_id) for e in (sent[i] for i in order)
        ]
        crash = min(plan.crash, len(events))
        await daemon.app.inbox.put_many(events[:crash])
        if crash:  # a replica claims the first events and dies with them
            now = env.clock.now()
            await daemon.app.apply_store.claim_inbox(crash, now, now + timedelta(seconds=LEASE))
        await daemon.app.inbox.put_many(events[crash:])
        await daemon.drain()
        env.clock.advance(LEASE + 1)  # the dead replica's lease ends
        await daemon.drain()
        env.clock.advance(3600)  # instances whose final event was lost are polled
        await daemon.drain()
    names = list(COLUMNS)
    for key, instance in instances.items():
        [row] = env.app_sql(
            f"SELECT {', '.join(names)} FROM app.expense_claim WHERE id = %s",
            key,
        )
        written = dict(zip(names, row, strict=True))
        written["decided_at"] = written["decided_at"].replace(second=0, microsecond=0)
        assert written == expected(instance), f"expense {key}: {plan}"

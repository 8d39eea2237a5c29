"""The business row follows each approval while it runs, whatever happens to the events,
and ends with DingTalk's record of the outcome.

Each example submits expense claims through the capture trigger, then:

1. before any event arrives, every row shows the instance just submitted: its id, the
   links syncd builds for it, the time it was created;
2. people act on the instances without finishing them (agree on the first node, one of
   two on the AND node, comments); the events they cause are delivered as a generated
   plan says (any order, duplicates, losses, a replica that claims some and dies), and
   once the instances were quiet long enough to be polled, every row shows where each
   one waits and for whom exactly as DingTalk's record says, with DingTalk's links;
3. everything is decided and delivered the same way, and every row holds DingTalk's
   record of the outcome, nothing left of the progress, the links still there.

Throughout, an audit trigger of the application's records every write: each row took
versions in increasing order, never a running state after its outcome, one outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.demo.config import KINDS
from syncd.dingtalk.events import make_event
from syncd.dingtalk.models import ProcessInstance, instance_links
from syncd.simulator.events import Event
from syncd.simulator.state import Instance
from tests.integration.pipeline.test_outcome_property import expected as outcome_of

CORP = "dingsimcorp0001"  # the simulator's default world
COLUMNS = {
    "approval_status": "status",
    "dingtalk_status": "dingtalk_status",
    "result": "result",
    "approver": "approver",
    "remark": "remark",
    "decided_at": "finished_at",
    "instance_id": "instance_id",
    "business_id": "business_id",
    "waiting_at": "current_node",
    "waiting_for": "pending_approvers",
    "problem": "reason",
    "link": "url",
    "pc_link": "pc_url",
    "mobile_link": "mobile_url",
    "changed_at": "state_changed_at",
    "syncd_seq": "seq",
}
STATUS = {
    "submitted": "SUBMITTED",
    "running": "IN_APPROVAL",
    "invalid": "NOT_SUBMITTED",
    "dead": "NOT_SUBMITTED",
    "approved": "APPROVED",
    "rejected": "REJECTED",
    "canceled": "CANCELED",
}
RANK = {"SUBMITTED": 0, "IN_APPROVAL": 1, "APPROVED": 2, "REJECTED": 2, "CANCELED": 2}
EXPENSE = {
    **KINDS["expense"],
    "write_back": {
        "table": "app.expense_claim",
        "key_column": "id",
        "columns": COLUMNS,
        "status_map": STATUS,
        "progress": True,
    },
}
LEASE = 300
QUIET = 600


@dataclass(frozen=True)
class Delivery:
    """What becomes of a batch of events: per event (in emission order) 0 lost, 1, or 2
    copies; the delivered copies' order; how many a replica claims before it dies."""

    copies: list[int]
    order: list[int]
    crash: int


deliveries = st.builds(
    Delivery,
    st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=60, max_size=60),
    st.permutations(range(120)).map(list),
    st.integers(0, 30),
)
#: A step that keeps an instance running: ``agree`` by the first node's approver ``who``
#: (or one of the AND node's two), or a comment.
moves = st.lists(st.tuples(st.sampled_from(["agree", "comment"]), st.integers(0, 1)), max_size=4)


@dataclass(frozen=True)
class Plan:
    moves: list[list[tuple[str, int]]]
    midway: Delivery
    end: Delivery
    finish: list[str]


plans = st.builds(
    Plan,
    st.lists(moves, min_size=1, max_size=3),
    deliveries,
    deliveries,
    st.lists(st.sampled_from(["agree", "refuse", "revoke"]), min_size=3, max_size=3),
)


def _advance(env: Any, instance: Instance, moves: list[tuple[str, int]]) -> None:
    """Act on the instance, never deciding it."""
    for what, who in moves:
        env.clock.advance(7)
        running = instance.running_tasks()
        user = running[who % len(running)].user_id
        if what == "comment":
            env.sim.engine.comment(instance, user, "请补充发票")
        elif len(running) > 1 or instance.current_node == 0:
            env.sim.engine.act(instance, user, True, "ok")


def _decide(env: Any, instance: Instance, how: str) -> None:
    while instance.status == "RUNNING":
        env.clock.advance(11)
        if how == "revoke":
            env.sim.terminate(instance.instance_id, remark="撤回")
        else:
            env.sim.engine.act(instance, None, how == "agree", "")


async def _deliver(env: Any, daemon: Any, emitted: list[Event], plan: Delivery) -> list[Event]:
    """Deliver ``emitted`` as ``plan`` says, let everything settle; the delivered events."""
    sent = [e for n, e in enumerate(emitted) for _ in range(plan.copies[n % 60])]
    delivered = [sent[i] for i in plan.order if i < len(sent)]
    events = [make_event("stream", e.event_type, e.data, e.event_id) for e in delivered]
    crash = min(plan.crash, len(events))
    await daemon.app.inbox.put_many(events[:crash])
    if crash:  # a replica claims the first events and dies with them
        now = env.clock.now()
        await daemon.app.apply_store.claim_inbox(crash, now, now + timedelta(seconds=LEASE))
    await daemon.app.inbox.put_many(events[crash:])
    await daemon.drain()
    env.clock.advance(2)  # task changes are written a moment after, together
    await daemon.drain()
    env.clock.advance(LEASE + 1)  # the dead replica's lease ends
    await daemon.drain()
    env.clock.advance(QUIET + 1)  # quiet instances are polled
    await daemon.drain()
    return delivered


def _minute(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(second=0, microsecond=0)


def _links(instance: Instance, read: ProcessInstance | None, delivered: list[Event]) -> Any:
    """The links as syncd may show them: the instance event's ``url`` if one reached it,
    the first tasks' links (DingTalk's GET, tasks created first; those created at the same
    moment may come in any order), else the aflow patterns."""
    urls = {
        e.data["url"]
        for e in delivered
        if e.data.get("processInstanceId") == instance.instance_id and e.data.get("url")
    }
    assert len(urls) <= 1
    url = next(iter(urls), None)
    tasks = [
        t for t in (read.tasks if read else []) if t.create_time and (t.pc_url or t.mobile_url)
    ]
    earliest = min((t.create_time for t in tasks if t.create_time), default=None)
    first = [t for t in tasks if t.create_time == earliest]
    built = instance_links(CORP, instance.instance_id)
    return {
        "link": {url or built.url},
        "pc_link": {t.pc_url for t in first} or {built.pc_url},
        "mobile_link": {url} if url else ({t.mobile_url for t in first} or {built.mobile_url}),
    }


def _row(env: Any, key: int) -> dict[str, Any]:
    names = list(COLUMNS)
    [row] = env.app_sql(f"SELECT {', '.join(names)} FROM app.expense_claim WHERE id = %s", key)
    return dict(zip(names, row, strict=True))


#: Every column but the time of the change, empty.
BLANK: dict[str, Any] = dict.fromkeys(c for c in COLUMNS if c != "changed_at")


def _check(row: dict[str, Any], expected: dict[str, Any], links: dict[str, set[Any]]) -> None:
    """``row`` is ``expected``, its links among those ``links`` allows."""
    assert {k: v for k, v in row.items() if k not in links} == {
        k: v for k, v in expected.items() if k not in links
    }
    for name, allowed in links.items():
        assert row[name] in allowed, f"{name}: {row[name]!r} not in {allowed}"


@pytest.fixture
def world(env):
    env.app_sql(
        "ALTER TABLE app.expense_claim ADD COLUMN dingtalk_status text, ADD COLUMN result text, "
        "ADD COLUMN approver text, ADD COLUMN remark text, ADD COLUMN business_id text, "
        "ADD COLUMN waiting_at text, ADD COLUMN waiting_for text, ADD COLUMN problem text, "
        "ADD COLUMN link text, ADD COLUMN pc_link text, ADD COLUMN mobile_link text, "
        "ADD COLUMN changed_at timestamptz, ADD COLUMN syncd_seq bigint;"
        "CREATE TABLE app.claim_writes (n serial, id int, status text, seq bigint);"
        "CREATE FUNCTION app.audit_claim() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
        "SET search_path = pg_catalog, pg_temp AS $$ BEGIN "
        "INSERT INTO app.claim_writes (id, status, seq) "
        "VALUES (NEW.id, NEW.approval_status, NEW.syncd_seq); RETURN NULL; END $$;"
        "CREATE TRIGGER audit AFTER UPDATE ON app.expense_claim "
        "FOR EACH ROW EXECUTE FUNCTION app.audit_claim();"
    )
    env.grant_write_back(EXPENSE)
    return env


@pytest.mark.timeout(600)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans)
async def test_the_row_follows_each_approval_and_ends_with_dingtalks_record(world, plan):
    env = world
    config = env.settings(
        kinds={"expense": EXPENSE},
        dingtalk={"corp_id": CORP},
        events={"stream": False},
        # Examples share the database and the clock: the budget must outlast them all.
        # quiet instances are polled at every delivery's end, however old.
        polling={"quiet_after": QUIET, "max_interval": QUIET, "monthly_budget": 10**7},
        pipeline={"lease_seconds": LEASE},
    )
    keys = []
    for _ in plan.moves:
        [(key,)] = env.app_sql(
            "INSERT INTO app.expense_claim (applicant, amount, category, spent_on, note, status) "
            "VALUES ('u1', 5000, '差旅', '2026-01-10', 'trip', 'submitted') RETURNING id"
        )
        keys.append(int(key))
    async with env.daemon(config) as daemon:
        await daemon.drain()
        rows = env.sql(
            "SELECT business_key, instance_id FROM syncd.approval WHERE business_key = ANY(%s)",
            [str(k) for k in keys],
        )
        instances = {int(key): env.sim.instance(instance_id) for key, instance_id in rows}
        assert len(instances) == len(keys)

        def seq(key: int) -> int:
            [(value,)] = env.sql(
                "SELECT progress_seq FROM syncd.approval WHERE business_key = %s", str(key)
            )
            return int(value)

        # 1. Submitted: nothing heard from DingTalk yet.
        for key, instance in instances.items():
            row = _row(env, key)
            assert _minute(row.pop("changed_at")) == _minute(instance.create_time)
            built = instance_links(CORP, instance.instance_id)
            assert row == BLANK | {
                "approval_status": "SUBMITTED",
                "dingtalk_status": "RUNNING",
                "instance_id": instance.instance_id,
                "link": built.url,
                "pc_link": built.pc_url,
                "mobile_link": built.mobile_url,
                "syncd_seq": seq(key),
            }

        # 2. Running: where each waits and for whom, as DingTalk's record says.
        for key, moves in zip(keys, plan.moves, strict=True):
            _advance(env, instances[key], moves)
        delivered = await _deliver(env, daemon, list(env.sim.events), plan.midway)
        reads = {
            k: await daemon.app.client.get_instance(i.instance_id) for k, i in instances.items()
        }
        for key, instance in instances.items():
            running = instance.running_tasks()
            times = [at for t in instance.tasks for at in (t.create_time, t.finish_time) if at]
            row = _row(env, key)
            assert _minute(row.pop("changed_at")) == _minute(max(times))
            expected = BLANK | {
                "approval_status": "IN_APPROVAL",
                "dingtalk_status": "RUNNING",
                "instance_id": instance.instance_id,
                "waiting_at": ",".join(sorted({t.activity_id for t in running})),
                "waiting_for": ",".join(sorted({t.user_id for t in running})),
                "syncd_seq": seq(key),
            }
            _check(row, expected, _links(instance, reads[key], delivered))

        # 3. Decided: DingTalk's record, nothing left of the progress.
        midway = len(env.sim.events)
        for key, how in zip(keys, plan.finish, strict=False):
            _decide(env, instances[key], how)
        delivered += await _deliver(env, daemon, env.sim.events[midway:], plan.end)
        seqs = {key: seq(key) for key in keys}
    for key, instance in instances.items():
        row = _row(env, key)
        decided = outcome_of(instance)
        assert _minute(row.pop("changed_at")) == decided["decided_at"]
        row["decided_at"] = _minute(row["decided_at"])
        _check(
            row, BLANK | decided | {"syncd_seq": seqs[key]}, _links(instance, reads[key], delivered)
        )
        writes = env.app_sql(
            "SELECT status, seq FROM app.claim_writes WHERE id = %s ORDER BY n", key
        )
        versions = [version for _, version in writes]
        assert versions == sorted(set(versions)), f"expense {key}: out of order: {writes}"
        ranks = [RANK[status] for status, _ in writes]
        assert ranks == sorted(ranks) and ranks.count(2) == 1, f"expense {key}: {writes}"

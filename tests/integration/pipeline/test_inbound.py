"""Inbound kinds: every instance started in DingTalk becomes exactly one business row.

The simulator starts instances as people in DingTalk would (``sim.start``); its ``start``
events reach syncd's inbox as generated plans say (duplicated, reordered, lost), replicas
die holding imports, two replicas import at once; each business row is compared with the
simulator's record of its instance, and the outcome is written into the imported row.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.app_inbound import inbound_listing
from syncd.dingtalk.events import make_event
from syncd.errors import ConfigError
from syncd.pipeline.inbound import Inbound
from syncd.ports.inbound import ImportItem
from syncd.simulator import Simulator, World
from syncd.simulator.default_world import DEFAULT_WORLD
from tests.roles import DAEMON

from .conftest import LEAVE_KIND, Env

PROCESS = "PROC-SIM-CLAIM"
TEMPLATE = {
    "process_code": PROCESS,
    "name": "费用申请",
    "form_uuid": "FORM-SIM-CLAIM",
    "components": [
        {"type": "TextField", "label": "事项"},
        {"type": "NumberField", "label": "金额"},
        {"type": "TextareaField", "label": "备注"},
    ],
    "flow": [{"name": "主管", "approvers": ["manager1"], "sign": "NONE"}],
}
CLAIM: dict[str, Any] = {
    "direction": "inbound",
    "process_code": PROCESS,
    "inbound": {
        "table": "app.claim",
        "key_column": "instance_id",
        "columns": {"subject": "事项", "amount": "金额", "note": "备注"},
        "instance_columns": {"applicant": "originator", "serial": "business_id"},
    },
    "write_back": {
        "table": "app.claim",
        "key_column": "instance_id",
        "columns": {"status": "status", "approver": "approver"},
    },
}
LEASE = 300


@pytest.fixture
def world(env: Env) -> Env:
    """The claim template in the simulator, and the application's table for it."""
    data = {**DEFAULT_WORLD, "templates": [*DEFAULT_WORLD["templates"], TEMPLATE]}
    env.sim = Simulator(World.model_validate(data), clock=env.clock)
    env.app_sql(
        "CREATE TABLE app.claim (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "instance_id text NOT NULL, subject text, amount numeric, note text, "
        "applicant text, serial text, status text, approver text)"
    )
    env.app_sql(
        f"GRANT SELECT, INSERT ON app.claim TO {DAEMON}; "
        f"GRANT UPDATE (status, approver) ON app.claim TO {DAEMON}"
    )
    return env


def config(env: Env, **kinds: Any) -> Any:
    return env.settings(
        kinds={"leave": LEAVE_KIND, "claim": CLAIM, **kinds},
        events={"stream": False},
        pipeline={"lease_seconds": LEASE},
    )


def start(env: Env, user: str = "u1", **values: str) -> str:
    form = [{"name": label, "value": value} for label, value in values.items()]
    return env.sim.start(PROCESS, user, form).instance_id


def started_events(env: Env, since: int = 0) -> list[Any]:
    events = [
        e
        for e in env.sim.events[since:]
        if e.event_type == "bpms_instance_change" and e.data.get("type") == "start"
    ]
    return [make_event("stream", e.event_type, e.data, e.event_id) for e in events]


def rows(env: Env) -> list[tuple[Any, ...]]:
    return env.app_sql(
        "SELECT instance_id, subject, amount, note, applicant, serial, status, approver "
        "FROM app.claim ORDER BY id"
    )


async def test_start_events_import_one_row_each_and_the_outcome_follows(world: Env) -> None:
    env = world
    first = start(env, 事项="出差 ✈", 金额="1200.5", 备注="上海")
    second = start(env, "u2", 事项="书")
    async with env.daemon(config(env)) as daemon:
        events = started_events(env)
        await daemon.app.inbox.put_many(events + events[::-1])  # duplicated, reordered
        await daemon.drain()
        env.sim.approve(first, "manager1", remark="ok")
        await daemon.app.inbox.put_many(
            [make_event("stream", e.event_type, e.data, e.event_id) for e in env.sim.events]
        )
        await env.advance(10)
        await daemon.drain()
    one, two = (env.sim.instance(i).business_id for i in (first, second))
    assert rows(env) == [
        (first, "出差 ✈", Decimal("1200.5"), "上海", "u1", one, "approved", "manager1"),
        (second, "书", None, None, "u2", two, None, None),
    ]
    assert env.sql(
        "SELECT kind, business_key, round, outbox_id, state FROM syncd.approval "
        "WHERE kind = 'claim' ORDER BY id"
    ) == [("claim", first, 1, None, "approved"), ("claim", second, 1, None, "running")]
    assert env.sql("SELECT count(*) FROM syncd.inbound_import") == [(0,)]
    [(calls,)] = env.sql("SELECT calls FROM syncd.usage WHERE purpose = 'import'")
    assert calls == 2


async def test_a_lost_start_event_is_found_by_the_listing(world: Env) -> None:
    env = world
    instance_id = start(env, 事项="lost")
    async with env.daemon(config(env)) as daemon:
        await daemon.drain()
        assert rows(env) == []  # no event came
        listing = inbound_listing(daemon.app)
        assert listing is not None
        assert await listing.run_once() == 1
        assert await listing.run_once() == 0  # queued already
        await daemon.drain()
        assert await listing.run_once() == 0  # known now
    assert [r[:2] for r in rows(env)] == [(instance_id, "lost")]


async def test_crashes_before_and_after_the_commit_leave_one_row(world: Env) -> None:
    env = world
    before, after = start(env, 事项="before"), start(env, 事项="after")
    async with env.daemon(config(env)) as daemon:
        stage = daemon.app.stages["inbound"]
        assert isinstance(stage, Inbound)
        await stage.store.queue("claim", PROCESS, [before, after], "listing", env.clock.now())
        now = env.clock.now()
        claimed = await stage.store.claim(5, now, "dead-replica", now + timedelta(seconds=LEASE))
        assert len(claimed) == 2
        await daemon.app.client.get_instance(before)  # read, then killed before the commit
        item = next(i for i in claimed if i.instance_id == after)
        await stage.import_one(item)  # committed; the replica dies before anything else
        await daemon.drain()
        assert [r[1] for r in rows(env)] == ["after"]  # the dead replica's lease holds
        env.clock.advance(LEASE + 1)
        await daemon.drain()
        await stage.import_one(item)  # a retry after the commit: known, nothing written
    assert sorted(r[1] for r in rows(env)) == ["after", "before"]
    assert env.sql("SELECT count(*) FROM syncd.approval WHERE kind = 'claim'") == [(2,)]


async def test_two_replicas_importing_at_once_make_one_row(world: Env) -> None:
    env = world
    instance_id = start(env, 事项="once")
    item = ImportItem(instance_id, "claim", PROCESS, "event", 1)
    async with env.daemon(config(env)) as one, env.daemon(config(env)) as two:
        stages = [d.app.stages["inbound"] for d in (one, two)]
        assert all(isinstance(s, Inbound) for s in stages)
        await asyncio.gather(*(s.import_one(item) for s in stages))  # type: ignore[attr-defined]
    assert [r[:2] for r in rows(env)] == [(instance_id, "once")]


async def test_a_value_that_does_not_fit_parks_the_instance_and_no_other(world: Env) -> None:
    env = world
    env.app_sql("ALTER TABLE app.claim ALTER COLUMN amount TYPE integer")
    bad, good = start(env, 事项="bad", 金额="12.5"), start(env, 事项="good", 金额="12")
    async with env.daemon(config(env)) as daemon:
        await daemon.app.inbox.put_many(started_events(env))
        await daemon.drain()
    assert [r[:3] for r in rows(env)] == [(good, "good", Decimal(12))]
    [(state, message)] = env.sql(
        "SELECT state, last_error_message FROM syncd.approval WHERE instance_id = %s", bad
    )
    assert state == "invalid"
    assert bad in message and "'金额'" in message and "column amount" in message


async def test_an_instance_of_a_create_in_doubt_waits_and_is_not_imported(world: Env) -> None:
    env = world
    ours = {**LEAVE_KIND, "process_code": PROCESS, "form": {"事项": "reason"}}
    ours.pop("correlation_field")
    settings = config(env, claim={**CLAIM, "process_code": "PROC-SIM-LEAVE"}, mine=ours)
    instance_id = start(env, 事项="maybe ours")
    env.sql(
        "INSERT INTO syncd.approval (kind, business_key, state, process_code) "
        "VALUES ('mine', 'k1', 'unknown', %s)",
        PROCESS,
    )
    claim = {**CLAIM}
    async with env.daemon(settings) as daemon:
        stage = daemon.app.stages["inbound"]
        assert isinstance(stage, Inbound) and claim
        await stage.store.queue("claim", PROCESS, [instance_id], "event", env.clock.now())
        await daemon.drain()
        [(error,)] = env.sql("SELECT last_error FROM syncd.inbound_import")
        assert "in doubt" in error
        # reconcile adopts the instance as the create's
        env.sql(
            "UPDATE syncd.approval SET state = 'running', instance_id = %s WHERE kind = 'mine'",
            instance_id,
        )
        env.clock.advance(10)
        await daemon.drain()
    assert rows(env) == []
    assert env.sql("SELECT count(*) FROM syncd.inbound_import") == [(0,)]


VALUES = st.one_of(
    st.none(),  # the component left out
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)
AMOUNTS = st.one_of(
    st.none(),
    st.just(""),
    st.decimals(min_value=-(10**9), max_value=10**9, places=2).map("{:.2f}".format),
    st.integers(-(10**6), 10**6).map(str),
)


@pytest.mark.timeout(120)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(forms=st.lists(st.tuples(VALUES, AMOUNTS, VALUES), min_size=1, max_size=4))
async def test_each_row_holds_the_instances_form(world: Env, forms: list[Any]) -> None:
    env = world
    await env.advance(120)  # each example its own second: DingTalk's rate limits
    ids = []
    for subject, amount, note in forms:
        values = {"事项": subject, "金额": amount, "备注": note}
        ids.append(start(env, **{k: v for k, v in values.items() if v is not None}))
    async with env.daemon(config(env)) as daemon:
        listing = inbound_listing(daemon.app)
        assert listing is not None
        await listing.run_once()
        await daemon.drain()
    written = {r[0]: r[1:4] for r in rows(env)}
    for instance_id in ids:
        record = {v["name"]: v["value"] for v in env.sim.instance(instance_id).form}
        expected = tuple(record.get(label) or None for label in ("事项", "金额", "备注"))
        amount = None if expected[1] is None else Decimal(expected[1])
        assert written[instance_id] == (expected[0], amount, expected[2])


async def test_a_submit_row_for_an_inbound_kind_is_parked_naming_it(world: Env) -> None:
    env = world
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, action, payload) "
        "VALUES ('claim', 'k1', 'submit', '{}')"
    )
    async with env.daemon(config(env)) as daemon:
        await daemon.drain()
    [(state, message)] = env.sql("SELECT state, last_error_message FROM syncd.approval")
    assert state == "invalid" and "kind 'claim' is inbound" in message
    assert env.sim.instances(process_code=PROCESS) == []


async def test_the_originator_is_written_as_the_directory_names_them(world: Env) -> None:
    env = world
    env.sql(
        "INSERT INTO syncd.dingtalk_user (user_id, name, job_number, read_at) "
        "VALUES ('u1', '张三', 'E0006', now())"
    )
    inbound = {**CLAIM["inbound"], "originator_by": "job_number"}
    settings = config(env, claim={**CLAIM, "inbound": inbound})
    known, unknown = start(env, "u1", 事项="a"), start(env, "u2", 事项="b")
    async with env.daemon(settings) as daemon:
        await daemon.app.inbox.put_many(started_events(env))
        await daemon.drain()
    assert [(r[0], r[4]) for r in rows(env)] == [(known, "E0006"), (unknown, None)]


@pytest.mark.timeout(120)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    copies=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    order=st.randoms(use_true_random=False),
)
async def test_any_delivery_of_start_events_gives_one_row_per_instance(
    world: Env, copies: list[int], order: Any
) -> None:
    """Each start event delivered ``copies[i]`` times (0: lost), in any order; then the
    listing: every instance once."""
    env = world
    await env.advance(120)  # each example its own second: DingTalk's rate limits
    since = len(env.sim.events)
    ids = [start(env, 事项=f"n{n}") for n in range(len(copies))]
    events = started_events(env, since)
    sent = [e for e, n in zip(events, copies, strict=True) for _ in range(n)]
    order.shuffle(sent)
    async with env.daemon(config(env)) as daemon:
        await daemon.app.inbox.put_many(sent)
        await daemon.drain()
        delivered = {e.instance_id for e in sent}
        assert {r[0] for r in rows(env)} >= delivered
        listing = inbound_listing(daemon.app)
        assert listing is not None
        await listing.run_once()
        await daemon.drain()
    imported = [r[0] for r in rows(env) if r[0] in ids]
    assert sorted(imported) == sorted(ids)


async def test_a_missing_table_or_column_stops_the_start_naming_them(world: Env) -> None:
    env = world
    inbound = {**CLAIM["inbound"], "columns": {"subject": "事项", "colour": "金额"}}
    with pytest.raises(ConfigError, match=r"table app\.claim has no column colour"):
        async with env.daemon(config(env, claim={**CLAIM, "inbound": inbound})):
            pass
    missing = {**CLAIM["inbound"], "table": "app.nope"}
    with pytest.raises(ConfigError, match=r"table app\.nope does not exist"):
        async with env.daemon(config(env, claim={**CLAIM, "inbound": missing})):
            pass

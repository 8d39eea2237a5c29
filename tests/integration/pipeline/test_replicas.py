"""Several daemons on one database share the work and never double-create."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syncd.db.submit_store import PostgresSubmitStore
from syncd.db.text import pg_text
from syncd.domain import ApprovalState, CallRecord
from syncd.pipeline.submit import Submit


async def drain_together(*daemons):
    """Run the replicas' cycles side by side until none of them finds work."""
    while True:
        counts = await asyncio.gather(*(d.cycle() for d in daemons))
        if not any(sum(c.values()) for c in counts):
            return


async def claim_as(env, daemon, actor: str, count: int):
    """The pending rounds ingested and ``count`` of them claimed by a replica named
    ``actor`` (a minute's lease): its store, the items and the time of the claim."""
    await daemon.app.stages["ingest"].run_once()
    now = env.clock.now()
    store = PostgresSubmitStore(daemon.app.pool, actor=actor)
    items = await store.claim_submits(count, now, actor, now + timedelta(seconds=60))
    assert len(items) == count
    return store, items, now


async def test_two_replicas_share_the_work_and_create_each_instance_once(env):
    keys = [env.submit_leave(applicant=f"u{1 + i % 3}", days=1 + i % 3) for i in range(30)]
    one = env.daemon(env.settings(replica_name="one", pipeline={"batch_size": 4}))
    two = env.daemon(env.settings(replica_name="two", pipeline={"batch_size": 4}))
    env.sim.faults.update(qps_per_api=None)  # each test daemon paces alone, on a fake clock
    async with one, two:
        await drain_together(one, two)
        await env.advance(120)
        await drain_together(one, two)
    instances = env.sim.instances()
    assert len(instances) == len(keys)
    assert len({i.instance_id for i in instances}) == len(keys)
    assert env.sql("SELECT DISTINCT state FROM syncd.approval") == [("approved",)]


async def test_a_replica_dying_mid_create_is_reconciled_not_created_twice(env):
    """The first replica claims an approval and DingTalk creates the instance, then the
    replica dies before recording it. After its lease expires another replica must adopt
    that instance rather than create a second one."""
    env.submit_leave(days=1)
    settings = env.settings(replica_name="survivor")
    async with env.daemon(settings) as survivor:
        await survivor.app.stages["ingest"].run_once()
        doomed = survivor.app.stages["submit"]
        assert isinstance(doomed, Submit)
        now = env.clock.now()
        store = PostgresSubmitStore(survivor.app.pool, actor="doomed")
        [item] = await store.claim_submits(1, now, "doomed", now + timedelta(seconds=120))
        kind = settings.kinds["leave"]
        request = await doomed.build(item, kind, [])
        await survivor.app.client.create_instance(request)  # ...and the replica dies here
        await survivor.drain()
        assert env.sql("SELECT state FROM syncd.approval") == [("submitting",)]
        await env.advance(121)  # the lease expires
        await survivor.drain()
    [instance] = env.sim.instances()
    # adopted, and since DingTalk had decided meanwhile, finished and written back
    assert env.sql("SELECT state, instance_id FROM syncd.approval") == [
        ("approved", instance.instance_id)
    ]
    history = [m for (m,) in env.sql("SELECT message FROM syncd.approval_event ORDER BY id")]
    assert any("lease expired" in (m or "") for m in history)
    assert env.sql("SELECT count(*) FROM syncd.approval_event WHERE endpoint = 'create'") == [(0,)]


async def test_concurrent_claims_never_return_the_same_approval(env):
    for i in range(40):
        env.submit_leave(applicant=f"u{1 + i % 3}", days=1)
    async with env.daemon() as daemon:
        await daemon.app.stages["ingest"].run_once()
        now = env.clock.now()
        stores = [PostgresSubmitStore(daemon.app.pool, actor=f"r{n}") for n in range(3)]
        claimed: list[list[int]] = []
        while True:
            batches = await asyncio.gather(
                *(s.claim_submits(5, now, s.actor, now + timedelta(seconds=60)) for s in stores)
            )
            if not any(batches):
                break
            claimed += [[item.id for item in batch] for batch in batches]
    ids = [i for batch in claimed for i in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_a_late_create_outcome_still_counts_its_call(env):
    """A create answered after the approval moved on changes no state, but the call was
    spent and an instance exists: both show in the history and the monthly usage."""
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        store, [item], now = await claim_as(env, daemon, "late", 1)
        call = CallRecord(endpoint="create", purpose="create", ok=True, duration_ms=12)
        created = {
            "process_code": "PROC-LEAVE",
            "form_values": None,
            "now": now,
            "next_poll_at": now,
            "calls": [call],
        }
        assert await store.record_created(item.id, instance_id="first", **created)
        assert not await store.record_created(item.id, instance_id="second", **created)
    history = env.sql(
        "SELECT event_type, to_state, endpoint, duration_ms FROM syncd.approval_event "
        "WHERE actor = 'late' ORDER BY id"
    )
    assert history == [
        ("transition", "submitting", None, None),
        ("call", None, "create", 12),
        ("transition", "running", None, None),
        ("call", None, "create", 12),
    ]
    assert env.sql("SELECT purpose, calls FROM syncd.usage") == [("create", 2)]
    assert env.sql("SELECT state, instance_id, calls_spent FROM syncd.approval") == [
        ("running", "first", 1)
    ]


#: DingTalk calls as a create may have spent them: failed or not, metered or not (contact
#: reads), with whatever code and message DingTalk sent (NUL included).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
CALLS = st.lists(
    st.builds(
        CallRecord,
        endpoint=st.sampled_from(["create", "contacts", "schema"]),
        purpose=st.sampled_from(["create", "lookup", "schema"]),
        ok=st.booleans(),
        duration_ms=st.integers(0, 60_000),
        code=st.none() | TEXT,
        http_status=st.none() | st.integers(100, 599),
        message=st.none() | TEXT,
        metered=st.booleans(),
    ),
    max_size=4,
)


@example(
    creates=[[CallRecord("create", "create", False, 3, code="a\x00b", message="busy\x00")]],
    late=[],
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(creates=st.lists(CALLS, min_size=1, max_size=10), late=CALLS)
async def test_creates_answered_together_are_recorded_each_as_it_would_be_alone(
    env, creates: list[list[CallRecord]], late: list[CallRecord]
):
    """Creates recorded while another is being recorded share a statement (group commit);
    every column of the approval, every history line and the usage counts are what
    recording each alone gives, and a late second answer for one approval still moves
    nothing (its calls are in the history and the usage only)."""
    for _ in creates:
        env.submit_leave(days=1)
    usage_before = dict(env.sql("SELECT purpose, calls FROM syncd.usage"))
    async with env.daemon() as daemon:
        store, items, now = await claim_as(env, daemon, "together", len(creates))

        def record(n: int, approval_id: int, instance_id: str, calls: list[CallRecord]):
            return store.record_created(
                approval_id,
                instance_id=instance_id,
                process_code="PROC-LEAVE",
                form_values=[{"name": "天数", "value": str(n)}],
                now=now + timedelta(seconds=n),
                next_poll_at=now + timedelta(minutes=n),
                calls=calls,
            )

        records = [
            record(n, item.id, f"inst-{item.id}", calls)
            for n, (item, calls) in enumerate(zip(items, creates, strict=True))
        ]
        again = record(len(items), items[0].id, f"again-{items[0].id}", late)
        assert await asyncio.gather(*records, again) == [True] * len(items) + [False]
        assert store.creates.items == len(items) + 1
    shown = pg_text  # what PostgreSQL can store of a text: NUL as U+FFFD
    for n, (item, calls) in enumerate(zip(items, creates, strict=True)):
        at = now + timedelta(seconds=n)
        row = env.sql(
            "SELECT state, instance_id, process_code, form_values, calls_spent, updated_at,"
            " next_poll_at, instance_created_at, lease_owner, lease_expires_at"
            " FROM syncd.approval WHERE id = %s",
            item.id,
        )
        form = [{"name": "天数", "value": str(n)}]
        poll = now + timedelta(minutes=n)
        assert row == [
            ("running", f"inst-{item.id}", "PROC-LEAVE", form, len(calls), at, poll, at, None, None)
        ]
        history = env.sql(
            "SELECT event_type, to_state, endpoint, http_status, code, duration_ms, message,"
            " at FROM syncd.approval_event WHERE approval_id = %s AND actor = 'together'"
            " AND to_state IS DISTINCT FROM 'submitting' ORDER BY id",
            item.id,
        )

        def lines(spent: list[CallRecord], when: datetime) -> list[tuple[Any, ...]]:
            return [
                (
                    "call",
                    None,
                    c.endpoint,
                    c.http_status,
                    shown(c.code),
                    c.duration_ms,
                    shown(c.message),
                    when,
                )
                for c in spent
            ]

        expected = lines(calls, at)
        expected.append(
            ("transition", "running", None, None, None, None, f"instance inst-{item.id}", at)
        )
        if n == 0:
            expected += lines(late, now + timedelta(seconds=len(items)))
        assert history == expected
    metered = Counter(c.purpose for calls in [*creates, late] for c in calls if c.metered)
    usage = dict(env.sql("SELECT purpose, calls FROM syncd.usage"))
    assert {k: usage.get(k, 0) - usage_before.get(k, 0) for k in usage} == {
        k: metered.get(k, 0) for k in usage
    }


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(code=TEXT.filter(bool), message=TEXT, calls=CALLS)
async def test_an_attempt_that_failed_is_recorded_whatever_dingtalk_said(
    env, code: str, message: str, calls: list[CallRecord]
):
    """DingTalk's code and message (NUL included) are recorded with the failed attempt,
    as PostgreSQL can store them, and the approval goes back to pending."""
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        store, [item], now = await claim_as(env, daemon, "failed", 1)
        retry = now + timedelta(seconds=30)
        assert await store.record_failed(
            item.id,
            to_state=ApprovalState.PENDING,
            now=now,
            next_attempt_at=retry,
            error_code=code,
            error_message=message,
            calls=calls,
            owner="failed",
        )
    row = env.sql(
        "SELECT state, last_error_code, last_error_message, next_attempt_at, calls_spent"
        " FROM syncd.approval WHERE id = %s",
        item.id,
    )
    assert row == [("pending", pg_text(code), pg_text(message), retry, len(calls))]
    [(note,)] = env.sql(
        "SELECT message FROM syncd.approval_event WHERE approval_id = %s AND actor = 'failed'"
        " AND event_type = 'transition' AND to_state = 'pending'",
        item.id,
    )
    assert note == pg_text(f"{code}: {message}")

"""Several daemons on one database share the work and never double-create."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from syncd.db.submit_store import PostgresSubmitStore
from syncd.domain import CallRecord
from syncd.pipeline.submit import Submit


async def drain_together(*daemons):
    """Run the replicas' cycles side by side until none of them finds work."""
    while True:
        counts = await asyncio.gather(*(d.cycle() for d in daemons))
        if not any(sum(c.values()) for c in counts):
            return


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
        await daemon.app.stages["ingest"].run_once()
        now = env.clock.now()
        store = PostgresSubmitStore(daemon.app.pool, actor="late")
        [item] = await store.claim_submits(1, now, "late", now + timedelta(seconds=60))
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


def _calls(n: int) -> list[CallRecord]:
    """None to three calls: a failed create before the one that worked, a contact read
    (not metered), a message with what a history line may hold."""
    calls = [
        CallRecord("create", "create", False, 30 + n, code="busy", http_status=503),
        CallRecord("contacts", "lookup", True, 5, metered=False, message=f"找到 {n}\t'\""),
        CallRecord("create", "create", True, 40 + n, http_status=200),
    ]
    return calls[3 - n % 4 :] if n % 4 else []


async def test_creates_answered_together_are_recorded_each_as_it_would_be_alone(env):
    """Creates recorded while another is being recorded share a statement (group commit);
    every row, history line and usage count is what recording each alone gives, and a
    second answer for one approval still moves nothing."""
    for i in range(12):
        env.submit_leave(applicant=f"u{1 + i % 3}", days=1)
    async with env.daemon() as daemon:
        await daemon.app.stages["ingest"].run_once()
        now = env.clock.now()
        store = PostgresSubmitStore(daemon.app.pool, actor="together")
        items = await store.claim_submits(12, now, "together", now + timedelta(seconds=60))

        def record(n: int, approval_id: int, instance_id: str):
            return store.record_created(
                approval_id,
                instance_id=instance_id,
                process_code="PROC-LEAVE",
                form_values=[{"name": "天数", "value": str(n)}],
                now=now + timedelta(seconds=n),
                next_poll_at=now + timedelta(minutes=n),
                calls=_calls(n),
            )

        records = [record(n, item.id, f"inst-{item.id}") for n, item in enumerate(items)]
        again = record(13, items[0].id, "again")  # a late second answer for the first
        assert await asyncio.gather(*records, again) == [True] * len(items) + [False]
        assert store.creates.items == len(items) + 1
        assert store.creates.statements < len(items) + 1  # some were recorded together
    for n, item in enumerate(items):
        at = now + timedelta(seconds=n)
        row = env.sql(
            "SELECT state, instance_id, form_values, calls_spent, updated_at, next_poll_at,"
            " instance_created_at, lease_owner FROM syncd.approval WHERE id = %s",
            item.id,
        )
        spent = len(_calls(n))  # a late answer's calls are in the history and usage only
        form = [{"name": "天数", "value": str(n)}]
        poll = now + timedelta(minutes=n)
        assert row == [("running", f"inst-{item.id}", form, spent, at, poll, at, None)]
        history = env.sql(
            "SELECT event_type, to_state, endpoint, http_status, code, duration_ms, message,"
            " at FROM syncd.approval_event WHERE approval_id = %s AND actor = 'together'"
            " AND to_state IS DISTINCT FROM 'submitting' ORDER BY id",
            item.id,
        )
        expected = [
            ("call", None, c.endpoint, c.http_status, c.code, c.duration_ms, c.message, at)
            for c in _calls(n)
        ] + [("transition", "running", None, None, None, None, f"instance inst-{item.id}", at)]
        if n == 0:
            late = now + timedelta(seconds=13)
            expected += [
                ("call", None, c.endpoint, c.http_status, c.code, c.duration_ms, c.message, late)
                for c in _calls(13)
            ]
        assert history == expected
    metered = sum(1 for n in [*range(12), 13] for c in _calls(n) if c.metered)
    assert env.sql("SELECT purpose, calls FROM syncd.usage") == [("create", metered)]

"""Apply: events in any order, any number of times, some never, some for instances syncd
does not know: each approval ends as DingTalk decided, written back once."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from syncd.dingtalk.events import InboundEvent, make_event
from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalState, Channel
from syncd.errors import DingTalkOutcomeUnknown, DingTalkTransient
from syncd.pipeline.apply import READ_LAG_ATTEMPTS, READ_LAG_DELAY, UNMATCHED_PATIENCE
from syncd.simulator.events import Event
from tests.fakes import EventFeed, Lost, Rig
from tests.unit.pipeline.support import (
    EXAMPLES,
    LEAVE,
    decided_state,
    leave,
    only,
    simulated_rig,
    submit,
)

A = ApprovalState
#: How people decide a leave request (two steps: manager1, then hr1).
DECISIONS = {
    "approve": ["approve", "approve"],
    "refuse": ["refuse"],
    "refuse later": ["approve", "refuse"],
    "revoke": ["terminate"],
    "revoke later": ["approve", "terminate"],
}


def delivery(event: Event, copy: int) -> InboundEvent:
    """The event as the inbox receives it; copies after the first come with other ids
    (another channel, a redelivery): the inbox cannot tell them apart, apply must."""
    channel: Channel = "stream" if copy == 0 else "callback"
    return make_event(channel, event.event_type, event.data, f"{event.event_id}-{copy}")


async def running_leave(rig: Rig) -> str:
    submit(rig, "7", leave())
    await rig.cycle()
    instance_id = only(rig, "7").instance_id
    assert instance_id is not None
    return instance_id


@EXAMPLES
@given(
    decision=st.sampled_from(sorted(DECISIONS)),
    reads=st.booleans(),
    data=st.data(),
)
async def test_events_in_any_order_and_number_end_the_approval_once(
    decision: str, reads: bool, data: st.DataObject
) -> None:
    """``reads``: the kind writes back who decided, so a final event reads the instance."""
    needs = {LEAVE: frozenset({"approver", "status"})} if reads else {}
    async with simulated_rig(needs=needs) as (rig, sim, _):
        instance_id = await running_leave(rig)
        for how in DECISIONS[decision]:
            getattr(sim, how)(instance_id)
        events = [e for e in sim.events if e.data.get("processInstanceId") == instance_id]
        copies = data.draw(st.lists(st.integers(0, 2), min_size=len(events), max_size=len(events)))
        deliveries = [delivery(e, c) for e, n in zip(events, copies, strict=True) for c in range(n)]
        order = data.draw(st.permutations(deliveries), label="order")
        batches = data.draw(st.lists(st.integers(1, 4), min_size=1), label="batches")
        rig.apply.batch_size = data.draw(st.sampled_from([1, 100]), label="batch_size")
        while order:
            size, batches = (batches[0], batches[1:]) if batches else (len(order), [])
            await rig.inbox.put_many(order[:size])
            order = order[size:]
            await rig.apply.run_once()
        for _ in range(3):  # events lost, or read a moment too early, are caught up with
            await sim.advance(rig.timing.quiet_after.total_seconds())
            await rig.cycle()
        row, instance = only(rig, "7"), sim.instance(instance_id)
        assert row.state is decided_state(instance)
        business = rig.targets[LEAVE].row(rig.db, "7")
        assert business["writes"] == 1 and business["status"] == row.state.value
        if reads:
            assert business["approver"] == instance.last_decision()[0]
        assert all(e.processed_at is not None for e in rig.db.t.inbox.values())
        ended = {
            str(e.payload["taskId"])
            for e in rig.db.t.inbox.values()
            if e.event_type == "bpms_task_change" and e.payload["type"] in ("finish", "cancel")
        }
        for (_, _, key), task in rig.db.t.tasks.items():
            if key in ended:
                assert task.record.status != "RUNNING", "a task that ended started again"
        finished = [line for line in rig.db.transitions(row.id) if line[0] == "running"]
        assert len(finished) == 1


async def test_an_event_for_an_instance_syncd_does_not_know_waits_then_is_dropped() -> None:
    async with simulated_rig() as (rig, sim, _):
        await rig.inbox.put(
            make_event(
                "stream", "bpms_instance_change", {"processInstanceId": "X", "type": "finish"}
            )
        )
        [event] = rig.db.t.inbox.values()
        delays = []
        while event.processed_at is None:
            await rig.apply.run_once()
            if event.processed_at is None:
                assert event.next_attempt_at is not None
                delays.append((event.next_attempt_at - rig.clock.now()).total_seconds())
                assert event.last_error == "instance not known yet"
                await sim.advance(delays[-1])
        assert delays[:3] == [2.0, 4.0, 6.0] and max(delays) == 60.0
        assert sum(delays) >= UNMATCHED_PATIENCE.total_seconds()
        assert event.last_error == "no approval has instance X; not created by syncd"


async def test_events_that_come_before_syncd_knows_the_instance_wait_for_it() -> None:
    """The create's answer was lost; DingTalk's events about the instance arrive first."""
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        client.script("create_instance", Lost(DingTalkOutcomeUnknown("read timeout")))
        await rig.cycle()
        row = only(rig, "7")
        [instance] = sim.instances()
        sim.approve(instance.instance_id)
        sim.approve(instance.instance_id)
        await EventFeed(sim, rig.inbox).pump()
        await rig.apply.run_once()
        assert row.state is A.UNKNOWN
        assert {e.last_error for e in rig.db.t.inbox.values()} == {"instance not known yet"}
        await sim.advance(rig.timing.unknown_grace.total_seconds())
        await rig.cycle()  # reconcile adopts it, already approved; then apply catches up
        assert row.state is A.APPROVED and row.instance_id == instance.instance_id
        await sim.advance(60)
        await rig.apply.run_once()
        assert all(e.processed_at is not None for e in rig.db.t.inbox.values())
        assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == 1
        assert rig.observer.of("approval_finished") == [(LEAVE, "approved", "reconcile", True)]


async def test_an_event_without_an_instance_is_dropped_with_a_note() -> None:
    async with simulated_rig() as (rig, _, _client):
        await rig.inbox.put(make_event("stream", "bpms_instance_change", {"type": "start"}))
        await rig.apply.run_once()
        [event] = rig.db.t.inbox.values()
        assert event.processed_at is not None
        assert event.last_error == "event without processInstanceId"


async def test_a_finish_event_without_a_result_is_confirmed_by_reading_the_instance() -> None:
    async with simulated_rig() as (rig, sim, client):
        instance_id = await running_leave(rig)
        sim.approve(instance_id)
        sim.approve(instance_id)
        payload = {"processInstanceId": instance_id, "type": "finish"}
        await rig.inbox.put(make_event("callback", "bpms_instance_change", payload))
        client.script("get_instance", DingTalkTransient("busy"))  # first read fails
        await rig.apply.run_once()
        row = only(rig, "7")
        assert row.state is A.RUNNING
        [event] = rig.db.t.inbox.values()
        assert event.next_attempt_at == rig.clock.now() + timedelta(seconds=30)
        await sim.advance(30)
        await rig.apply.run_once()
        assert row.state is A.APPROVED and client.count("get_instance") == 2
        assert rig.observer.of("approval_finished") == [(LEAVE, "approved", "callback", True)]


async def test_a_final_event_dingtalks_read_does_not_show_yet_is_trusted_after_a_while() -> None:
    needs = {LEAVE: frozenset({"approver"})}
    async with simulated_rig(needs=needs) as (rig, sim, client):
        instance_id = await running_leave(rig)
        sim.refuse(instance_id, remark="no")
        [final] = [
            e
            for e in sim.events
            if e.event_type == "bpms_instance_change" and e.data["type"] == "finish"
        ]
        still = ProcessInstance(instance_id=instance_id, status="RUNNING")
        client.script("get_instance", *[still] * READ_LAG_ATTEMPTS)
        await rig.inbox.put(delivery(final, 0))
        row = only(rig, "7")
        for _ in range(READ_LAG_ATTEMPTS - 1):
            await rig.apply.run_once()
            assert row.state is A.RUNNING
            await sim.advance(READ_LAG_DELAY.total_seconds())
        await rig.apply.run_once()
        assert row.state is A.REJECTED and client.count("get_instance") == READ_LAG_ATTEMPTS
        assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == 1

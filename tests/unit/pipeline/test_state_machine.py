"""The approval state machine through the stages: each path by example, then every
path at once — generated programs of requests, cancels, decisions, event deliveries,
database failures and clock moves, after which nothing is lost, no approval has two
instances, every outcome is DingTalk's and is written back once."""

# The stages change the rows a test holds: mypy would take a second `row.state is ...`
# for one that cannot be true after the first.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from syncd.domain import FINISHED, PARKED, ApprovalState
from syncd.pipeline.cancel import NOT_SUBMITTED
from syncd.simulator import Simulator
from tests.fakes import EventFeed, Rig
from tests.unit.pipeline.support import (
    DEMO_KINDS,
    EXAMPLES,
    LEAVE,
    correlation,
    decided_state,
    instance_of,
    leave,
    only,
    simulated_rig,
    submit,
)

A = ApprovalState


async def test_a_request_goes_pending_submitting_running_approved_and_is_written_once() -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.RUNNING and row.instance_id is not None
        sim.approve(instance_of(row), remark="ok")
        sim.approve(instance_of(row))
        await EventFeed(sim, rig.inbox).pump()
        await rig.cycle()
        assert row.state is A.APPROVED
        assert rig.db.transitions(row.id) == [
            (None, "pending"),
            ("pending", "submitting"),
            ("submitting", "running"),
            ("running", "approved"),
        ]
        business = rig.targets[LEAVE].row(rig.db, "7")
        assert business["writes"] == 1 and business["status"] == "approved"
        assert business["approver"] == "hr1" and rig.db.t.notified == [row.id]
        assert rig.observer.of("approval_finished") == [(LEAVE, "approved", "stream", True)]


@pytest.mark.parametrize(
    ("decide", "state"),
    [("refuse", A.REJECTED), ("terminate", A.CANCELED)],
)
async def test_dingtalk_refusing_or_revoking_ends_the_approval_so(
    decide: str, state: ApprovalState
) -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        getattr(sim, decide)(instance_of(row))
        await EventFeed(sim, rig.inbox).pump()
        await rig.cycle()
        assert row.state is state and row.written_back_at is not None
        assert rig.targets[LEAVE].row(rig.db, "7")["status"] == state.value


async def test_a_payload_without_its_originator_is_parked_invalid_at_ingest() -> None:
    async with simulated_rig() as (rig, _, client):
        payload = leave()
        del payload["applicant"]
        submit(rig, "7", payload)
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.INVALID and row.last_error_code == "bad_payload"
        assert "'applicant'" in (row.last_error_message or "")
        assert rig.db.transitions(row.id) == [(None, "invalid")]
        assert client.calls == []
        assert rig.observer.of("approval_parked") == [(LEAVE, "invalid", "bad_payload")]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"leave_type": "产假"}, "年假"),  # not an option: the options are listed
        ({"start_date": None}, "'start_date'"),  # the template requires the range
        ({"days": "two"}, "'天数'"),
        ({"end_date": "2026-01-01"}, "before it starts"),
    ],
)
async def test_a_value_the_template_refuses_is_parked_invalid_at_submit(
    change: dict[str, Any], named: str
) -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", {**leave(), **change})
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.INVALID and row.last_error_code == "bad_payload"
        assert named in (row.last_error_message or "")
        assert rig.db.transitions(row.id)[-1] == ("submitting", "invalid")
        assert sim.instances() == []


async def test_dingtalk_refusing_the_create_parks_it_with_its_code_and_a_hint() -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave(applicant="nobody"))
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.INVALID and row.last_error_code
        assert "check the originator 'nobody'" in (row.last_error_message or "")
        assert sim.instances() == []


async def test_a_resubmit_while_running_is_refused_when_the_kind_rejects_them() -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        submit(rig, "7", leave(days=3))
        await rig.cycle()
        first, second = only(rig, "7"), only(rig, "7", 2)
        assert first.state is A.RUNNING
        assert second.state is A.INVALID and second.last_error_code == "still_running"
        assert len(sim.instances()) == 1


async def test_a_resubmit_supersedes_the_running_round_when_the_kind_says_so() -> None:
    kinds = {LEAVE: DEMO_KINDS[LEAVE].model_copy(update={"on_resubmit": "supersede"})}
    async with simulated_rig(kinds) as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        first = only(rig, "7")
        await sim.advance(16)  # DingTalk refuses revoking an instance younger than 15 s
        submit(rig, "7", leave(days=3))
        await rig.cycle()
        second = only(rig, "7", 2)
        assert first.state is A.CANCELED and first.dingtalk_status == "TERMINATED"
        # The new round waited for the old one to be final (claims skip the key until then).
        assert second.state is A.PENDING
        await rig.cycle()
        assert second.state is A.RUNNING
        assert [i.status for i in sim.instances()] == ["TERMINATED", "RUNNING"]
        assert rig.targets[LEAVE].row(rig.db, "7")["writes"] == 1


async def test_a_cancel_before_the_create_finishes_it_without_calling_dingtalk() -> None:
    async with simulated_rig() as (rig, _, client):
        submit(rig, "7", leave())
        rig.db.add_outbox(LEAVE, "7", {}, action="cancel", at=rig.clock.now())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.CANCELED and row.dingtalk_status == NOT_SUBMITTED
        assert rig.db.transitions(row.id)[-1] == ("pending", "canceled")
        assert client.calls == [] and row.written_back_at is not None


async def test_a_cancel_of_a_running_one_revokes_it_after_dingtalks_guard() -> None:
    async with simulated_rig() as (rig, sim, client):
        submit(rig, "7", leave())
        await rig.cycle()
        rig.db.add_outbox(LEAVE, "7", {}, action="cancel", at=rig.clock.now())
        await rig.cycle()
        row = only(rig, "7")
        assert row.state is A.RUNNING and client.count("terminate_instance") == 0
        await sim.advance(15)
        await rig.cycle()
        assert row.state is A.CANCELED and row.dingtalk_status == "TERMINATED"
        assert [i.status for i in sim.instances()] == ["TERMINATED"]
        assert rig.targets[LEAVE].row(rig.db, "7")["status"] == "canceled"


async def test_a_cancel_that_comes_after_the_decision_applies_the_decision() -> None:
    async with simulated_rig() as (rig, sim, _):
        submit(rig, "7", leave())
        await rig.cycle()
        row = only(rig, "7")
        sim.refuse(instance_of(row))  # its events are lost: syncd still thinks it runs
        rig.db.add_outbox(LEAVE, "7", {}, action="cancel", at=rig.clock.now())
        await sim.advance(15)
        await rig.cycle()
        assert row.state is A.REJECTED and row.dingtalk_result == "refuse"


@pytest.mark.parametrize("latest", [None, "approved"])
async def test_a_cancel_with_nothing_to_cancel_says_why(latest: str | None) -> None:
    async with simulated_rig() as (rig, sim, _):
        if latest:
            submit(rig, "7", leave())
            await rig.cycle()
            sim.approve(instance_of(only(rig, "7")))
            sim.approve(instance_of(only(rig, "7")))
            await EventFeed(sim, rig.inbox).pump()
            await rig.cycle()
        rig.db.add_outbox(LEAVE, "7", {}, action="cancel", at=rig.clock.now())
        await rig.cycle()
        if latest:
            assert only(rig, "7").state is A.APPROVED
            assert any("cancel ignored" in n for n in rig.db.notes(only(rig, "7").id))
        else:
            assert only(rig, "7").last_error_code == "nothing_to_cancel"


# --- every path at once --------------------------------------------------------------

KEYS = ["1", "2", "3"]
#: Store methods a database failure may hit (before or after they commit).
STORE_METHODS = [
    "ingest",
    "claim_submits",
    "record_intents",
    "record_created",
    "record_failed",
    "claim_unknowns",
    "claim_inbox",
    "finish",
    "finish_many",
    "touch_many",
    "claim_polls",
    "claim_cancels",
]
SUBMIT = st.tuples(st.just("submit"), st.sampled_from(KEYS), st.sampled_from([LEAVE, "relief"]))
CYCLE = st.tuples(st.just("cycle"), st.booleans())
steps = st.one_of(
    SUBMIT,
    st.tuples(st.just("cancel"), st.sampled_from(KEYS), st.sampled_from([LEAVE, "relief"])),
    CYCLE,
    CYCLE,
    st.tuples(st.just("advance"), st.sampled_from([1, 5, 16, 61, 130, 900])),
    st.tuples(
        st.just("decide"), st.integers(0, 5), st.sampled_from(["approve", "refuse", "terminate"])
    ),
    st.tuples(st.just("deliver"), st.booleans()),
    st.tuples(st.just("fail"), st.sampled_from(STORE_METHODS), st.booleans()),
)
#: Programs start with a few requests, then anything happens.
programs = st.tuples(st.lists(SUBMIT, min_size=1, max_size=4), st.lists(steps, max_size=40)).map(
    lambda parts: parts[0] + parts[1]
)
KINDS = {
    LEAVE: DEMO_KINDS[LEAVE],
    "relief": DEMO_KINDS[LEAVE].model_copy(update={"on_resubmit": "supersede"}),
}


def decide(sim: Simulator, pick: int, how: str) -> None:
    running = [i for i in sim.instances() if i.status == "RUNNING"]
    if running:
        getattr(sim, how)(running[pick % len(running)].instance_id)


async def run_step(rig: Rig, sim: Simulator, feed: EventFeed, step: tuple[Any, ...]) -> None:
    match step:
        case ("submit", key, kind):
            if key not in rig.db.t.business.get(f"app.{kind}", {}):
                rig.targets[kind].add_row(rig.db, key)
            rig.db.add_outbox(kind, key, leave(), at=rig.clock.now())
        case ("cancel", key, kind):
            rig.db.add_outbox(kind, key, {}, action="cancel", at=rig.clock.now())
        case ("cycle", side_by_side):
            await (rig.lanes() if side_by_side else rig.cycle())
        case ("advance", seconds):
            await sim.advance(seconds)
        case ("decide", pick, how):
            decide(sim, pick, how)
        case ("deliver", again):
            await feed.pump(again=again)
        case ("fail", method, after_commit):
            rig.db.fail(method, after_commit=after_commit)


async def drain(rig: Rig, sim: Simulator, feed: EventFeed) -> None:
    """Let every request finish: people approve what runs, time passes, stages run."""
    rig.db.heal()
    for _ in range(12):
        await feed.pump()
        await rig.cycle()
        for instance in sim.instances():
            while instance.status == "RUNNING":
                sim.approve(instance.instance_id)
        await sim.advance(130)


def check_outcomes(rig: Rig, sim: Simulator) -> None:
    instances = sim.instances()
    by_key = Counter(correlation(i) for i in instances)
    assert all(n == 1 for n in by_key.values()), f"an approval has two instances: {by_key}"
    by_id = {i.instance_id: i for i in instances}
    for a in rig.db.t.approvals.values():
        assert a.state in FINISHED | PARKED, f"approval {a.id} left {a.state}"
        if a.instance_id is not None:
            instance = by_id[a.instance_id]
            assert correlation(instance) == f"syncd:{a.kind}/{a.business_key}/{a.round}"
            assert a.state is decided_state(instance)
        elif a.state in FINISHED:
            assert (a.state, a.dingtalk_status) == (A.CANCELED, NOT_SUBMITTED)
        if a.state in FINISHED:
            assert a.written_back_at is not None and a.writeback_attempts == 1
    assert not [
        i
        for i in instances
        if correlation(i)
        not in {f"syncd:{a.kind}/{a.business_key}/{a.round}" for a in rig.db.t.approvals.values()}
    ], "an instance no approval owns"
    for kind, target in rig.targets.items():
        for key, row in rig.db.t.business.get(target.name, {}).items():
            finished = [
                a
                for a in rig.db.t.approvals.values()
                if (a.kind, a.business_key) == (kind, key) and a.state in FINISHED
            ]
            assert row["writes"] == len(finished)


@EXAMPLES
@given(program=programs)
@example(  # the database fails recording a create: the lease runs out, reconcile adopts
    program=[("submit", "1", LEAVE), ("fail", "record_created", False), ("cycle", True)]
)
@example(  # a resubmit supersedes a running round; the revoke's answer is lost
    program=[
        ("submit", "1", "relief"),
        ("cycle", False),
        ("advance", 16),
        ("submit", "1", "relief"),
        ("fail", "finish", True),
        ("cycle", True),
        ("deliver", True),
        ("cycle", False),
    ]
)
@example(  # a decision whose events come twice, the first time while apply fails
    program=[
        ("submit", "2", LEAVE),
        ("cycle", False),
        ("decide", 0, "refuse"),
        ("deliver", False),
        ("fail", "finish_many", False),
        ("cycle", True),
        ("deliver", True),
        ("cycle", True),
    ]
)
async def test_whatever_happens_each_request_ends_once_as_dingtalk_decided(
    program: list[tuple[Any, ...]],
) -> None:
    async with simulated_rig(KINDS) as (rig, sim, _):
        feed = EventFeed(sim, rig.inbox)
        for step in program:
            await run_step(rig, sim, feed, step)
        await drain(rig, sim, feed)
        assert all(e.consumed_at is not None for e in rig.db.t.outbox.values())
        check_outcomes(rig, sim)
        assert not [e for e in rig.db.t.inbox.values() if e.processed_at is None]
        for line in rig.db.t.history:  # the paths taken (--hypothesis-show-statistics)
            if line.event_type == "transition":
                event(f"{line.from_state} → {line.to_state}")

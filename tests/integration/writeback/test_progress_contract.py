"""The progress half of the ``syncd.ports.BusinessTarget`` contract, over every rig.

Unfinished rounds (submitted, running, invalid, dead) are written by the write-back
stage through syncd's real stores, one or two replicas at once. The rounds' changes are
generated (task starts and finishes with node names and approvers, instance links from
events and tasks, parked rounds with their reasons, final outcomes), and so are the
write passes between them. Every written column is compared with what syncd recorded of
the round, and the row's write history (an audit trigger of the application's) shows
each version written once, in order, never an older one after a newer one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.models import instance_links
from syncd.domain import ApprovalRef, ApprovalState, Final, TaskRecord
from tests.integration.writeback.conftest import (
    CORP,
    NOW,
    STATUS,
    Rig,
    Syncd,
    new_key,
    run_sql,
)

EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(300)

USERS = ["u-manager", "u-finance", "u-hr", "u-ceo"]
NODES = ["主管审批", "财务", "HR, 人事"]
REASONS = st.sampled_from(
    ["outbox row 7: payload.amount is missing; add it", "DingTalk 400 processCodeError", "x" * 300]
)


@dataclass
class Round:
    """What syncd recorded of one unfinished round, as the test made it."""

    approval: ApprovalRef
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    url: str | None = None

    def touch(self, record: TaskRecord) -> None:
        """Record a task as syncd does: what a record leaves out stays, a task's times once
        known stay, and a task that ended does not start again."""
        earlier = self.tasks.get(record.record_key)
        if earlier is None:
            self.tasks[record.record_key] = record
            return
        merged = {
            name: getattr(record, name)
            if getattr(record, name) is not None
            else getattr(earlier, name)
            for name in TaskRecord.__dataclass_fields__
        }
        for name in ("started_at", "finished_at"):
            merged[name] = getattr(earlier, name) or getattr(record, name)
        if earlier.status not in (None, "RUNNING") and record.status == "RUNNING":
            merged["status"] = earlier.status
        self.tasks[record.record_key] = TaskRecord(**merged)

    def first(self) -> list[TaskRecord]:
        """The tasks in syncd's order for links: started first, then recorded first."""
        order = list(self.tasks.values())
        return sorted(
            order, key=lambda t: (t.started_at is None, t.started_at or NOW, order.index(t))
        )

    def expected(self, seq: int) -> dict[str, Any]:
        """The business row showing this round at version ``seq``."""
        running = [t for t in self.tasks.values() if t.status == "RUNNING"]
        first = self.first()
        links = instance_links(
            CORP,
            self.approval.instance_id,
            url=self.url,
            task_pc_url=next((t.pc_url for t in first if t.pc_url), None),
            task_mobile_url=next((t.mobile_url for t in first if t.mobile_url), None),
        )
        times = [at for t in self.tasks.values() for at in (t.started_at, t.finished_at) if at]
        return {
            "status": STATUS["running" if self.tasks else "submitted"],
            "dingtalk_status": "RUNNING",
            "result": None,
            "approver": None,
            "remark": None,
            "decided_at": None,
            "instance_id": self.approval.instance_id,
            "business_id": None,
            "syncd_round": self.approval.round,
            "syncd_seq": seq,
            "waiting_at": ",".join(sorted({t.activity_name for t in running if t.activity_name}))
            or None,
            "waiting_for": ",".join(sorted({t.user_id for t in running if t.user_id})) or None,
            "problem": None,
            "link": links.url,
            "pc_link": links.pc_url,
            "mobile_link": links.mobile_url,
            "changed_at": max(times) if times else self.approval.instance_created_at,
        }


def parked_row(round_: int, state: str, reason: str, seq: int) -> dict[str, Any]:
    """The business row showing a parked round: why, and nothing of an instance."""
    return {
        "status": STATUS[state],
        "dingtalk_status": None,
        "result": None,
        "approver": None,
        "remark": None,
        "decided_at": None,
        "instance_id": None,
        "business_id": None,
        "syncd_round": round_,
        "syncd_seq": seq,
        "waiting_at": None,
        "waiting_for": None,
        "problem": reason,
        "link": None,
        "pc_link": None,
        "mobile_link": None,
        "changed_at": NOW,
    }


# --- what happens to a round between write passes ------------------------------------


@dataclass(frozen=True)
class Start:
    user: int
    node: int


@dataclass(frozen=True)
class Finish:
    user: int


@dataclass(frozen=True)
class Read:
    """A GET (confirm or poll) gave the tasks' links."""

    user: int


@dataclass(frozen=True)
class Link:
    """An instance event with the instance's link."""


@dataclass(frozen=True)
class Write:
    replicas: int


Step = Start | Finish | Read | Link | Write

steps = st.lists(
    st.one_of(
        st.builds(Start, st.integers(0, 3), st.integers(0, 2)),
        st.builds(Finish, st.integers(0, 3)),
        st.builds(Read, st.integers(0, 3)),
        st.just(Link()),
        st.builds(Write, st.integers(1, 2)),
    ),
    max_size=10,
)


@dataclass(frozen=True)
class Plan:
    """One business key's rounds: each parked (with a reason) or submitted and run through
    ``steps``; every round but the last then finishes."""

    rounds: list[tuple[str, list[Step], str]]


plans = st.builds(
    Plan,
    st.lists(
        st.tuples(st.sampled_from(["running", "running", "invalid", "dead"]), steps, REASONS),
        min_size=1,
        max_size=3,
    ),
)


def record(step: Step, n: int, at: datetime) -> TaskRecord | None:
    """The task record a step makes syncd record (``n``: the step's position)."""
    if isinstance(step, Start):
        return TaskRecord(
            "task",
            f"t-{step.user}",
            user_id=USERS[step.user],
            activity_id=f"node-{step.node}",
            activity_name=NODES[step.node],
            status="RUNNING",
            started_at=at,
        )
    if isinstance(step, Finish):
        return TaskRecord(
            "task", f"t-{step.user}", status="COMPLETED", result="AGREE", finished_at=at
        )
    if isinstance(step, Read):
        return TaskRecord(
            "task",
            f"t-{step.user}",
            user_id=USERS[step.user],
            pc_url=f"https://sim.example/pc?task={step.user}&n={n}",
            mobile_url=f"https://sim.example/m?task={step.user}&n={n}",
        )
    return None


async def play(syncd: Syncd, round_: Round, step: Step, n: int, at: datetime) -> bool:
    """Apply a change step as apply does; whether it changed anything."""
    if isinstance(step, Link):
        url = f"https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm?procInstId=x&n={n}"
        await syncd.apply.touch(round_.approval, at, next_poll_at=at, url=url, progress_due=at)
        round_.url = url
        return True
    task = record(step, n, at)
    assert task is not None
    await syncd.apply.touch(round_.approval, at, next_poll_at=at, tasks=[task], progress_due=at)
    round_.touch(task)
    return True


def seq_of(syncd: Syncd, approval_id: int) -> int:
    return int(syncd.progress_of(approval_id)["progress_seq"])


@EXAMPLES
@given(plan=plans)
async def test_the_row_shows_each_rounds_latest_state_once_per_change_never_going_back(
    rig: Rig, syncd: Syncd, plan: Plan
) -> None:
    key = new_key()
    rig.add_row(key)
    at = NOW
    written = 0
    for number, (kind, changes, reason) in enumerate(plan.rounds, start=1):
        at += timedelta(minutes=1)
        last = number == len(plan.rounds)
        if kind != "running":
            approval_id = syncd.parked(key, number, kind, reason)
            assert await syncd.progress(at) == 1
            written += 1
            assert rig.row(key) == parked_row(number, kind, reason, seq_of(syncd, approval_id))
            assert await syncd.progress(at, replicas=2) == 0  # nothing new: nothing written
            continue
        round_ = Round(syncd.running(key, number))
        changed = True  # the new instance
        for n, step in enumerate([*changes, Write(1)]):
            at += timedelta(seconds=1)
            if isinstance(step, Write):
                done = await syncd.progress(at, replicas=step.replicas)
                assert done == int(changed)
                written += done
                changed = False
                seq = seq_of(syncd, round_.approval.id)
                assert rig.row(key) == round_.expected(seq)
            else:
                changed = await play(syncd, round_, step, n, at) or changed
        if not last:
            final = Final(ApprovalState.APPROVED, "COMPLETED", "agree", at)
            assert (await syncd.apply.finish(round_.approval, final, at)).written
            written += 1
            assert await syncd.progress(at + timedelta(minutes=1), replicas=2) == 0
    versions = rig.versions(key)
    assert len(versions) == written
    assert versions == sorted(set(versions)), "an older version after a newer one, or twice"


async def test_a_refused_progress_write_is_recorded_retried_and_holds_up_no_other(
    rig: Rig, syncd: Syncd
) -> None:
    missing, present = new_key(), new_key()
    rig.add_row(present)
    stuck, fine = syncd.running(missing), syncd.running(present)
    assert await syncd.progress(NOW) == 2
    assert rig.row(present) == Round(fine).expected(seq_of(syncd, fine.id))
    state = syncd.progress_of(stuck.id)
    assert state["progress_attempts"] == 1 and str(missing) in state["progress_error"]
    assert state["progress_next_at"] == NOW + timedelta(seconds=30)
    assert syncd.notes(stuck.id) == [
        f"progress write-back (submitted) failed: {state['progress_error']}"
    ]
    view = run_sql(syncd.admin, "SELECT id FROM syncd.progress_unwritten")
    assert [r["id"] for r in view] == [stuck.id]
    # Not due before its retry; then retried with backoff, and given up at max_attempts.
    assert await syncd.progress(NOW + timedelta(seconds=29)) == 0
    assert await syncd.progress(NOW + timedelta(seconds=30)) == 1
    assert syncd.progress_of(stuck.id)["progress_next_at"] == NOW + timedelta(seconds=90)
    assert await syncd.progress(NOW + timedelta(seconds=90)) == 1
    state = syncd.progress_of(stuck.id)
    assert (state["progress_attempts"], state["progress_next_at"]) == (3, None)
    assert state["progress_written_seq"] == state["progress_seq"]  # given up: not due
    assert "given up until the next change" in syncd.notes(stuck.id)[-1]
    rig.add_row(missing)
    assert await syncd.progress(NOW + timedelta(hours=1)) == 0
    # The round's next change is written, and clears the error.
    task = TaskRecord("task", "t-1", user_id="u-boss", status="RUNNING", started_at=NOW)
    later = NOW + timedelta(hours=2)
    await syncd.apply.touch(stuck, later, next_poll_at=later, tasks=[task], progress_due=later)
    assert await syncd.progress(later) == 1
    round_ = Round(stuck)
    round_.touch(task)
    assert rig.row(missing) == round_.expected(seq_of(syncd, stuck.id))
    state = syncd.progress_of(stuck.id)
    assert (state["progress_attempts"], state["progress_error"]) == (0, None)
    assert run_sql(syncd.admin, "SELECT id FROM syncd.progress_unwritten") == []
    # The final outcome is written as ever, once.
    final = Final(ApprovalState.REJECTED, "COMPLETED", "refuse", later)
    assert (await syncd.apply.finish(stuck, final, later)).written
    assert [status for _, status in rig.writes(missing)] == ["IN_APPROVAL", "REJECTED"]


async def test_a_refused_progress_write_leaves_nothing_of_it(rig: Rig, syncd: Syncd) -> None:
    key = new_key()
    rig.add_row(key)
    untouched = rig.row(key)
    approval = syncd.running(key)
    rig.refuse("the application is closed for maintenance")
    try:
        assert await syncd.progress(NOW) == 1
        assert rig.row(key) == untouched and rig.writes(key) == []
        assert "closed for maintenance" in syncd.progress_of(approval.id)["progress_error"]
    finally:
        rig.refuse(None)
    assert await syncd.progress(NOW + timedelta(seconds=30)) == 1
    assert rig.row(key) == Round(approval).expected(seq_of(syncd, approval.id))


@EXAMPLES
@given(replicas=st.integers(1, 2), first=st.sampled_from(["old", "new", "together"]))
async def test_an_older_rounds_progress_never_lands_over_a_newer_round(
    rig: Rig, syncd: Syncd, replicas: int, first: str
) -> None:
    key = new_key()
    rig.add_row(key)
    old = syncd.parked(key, 1, "invalid", "outbox row 1: payload.days is missing")
    if first == "old":  # round 1 refused, round 2 shown meanwhile, then round 1 retried
        rig.refuse("busy")
        assert await syncd.progress(NOW) == 1
        rig.refuse(None)
    new = syncd.running(key, 2)
    if first == "together":
        assert await syncd.progress(NOW + timedelta(minutes=1), replicas=replicas) == 1
    else:
        assert await syncd.progress(NOW, replicas=replicas) == 1
        assert await syncd.progress(NOW + timedelta(minutes=1), replicas=replicas) == 0
    assert rig.row(key) == Round(new).expected(seq_of(syncd, new.id))
    assert rig.writes(key) == [(2, STATUS["submitted"])]
    state = syncd.progress_of(old)
    assert (
        state["progress_written_seq"] == state["progress_seq"] and state["progress_error"] is None
    )


@EXAMPLES
@given(race=st.booleans(), replicas=st.integers(1, 2))
async def test_a_rounds_progress_never_follows_its_final_outcome(
    rig: Rig, syncd: Syncd, race: bool, replicas: int
) -> None:
    key = new_key()
    rig.add_row(key)
    approval = syncd.running(key)
    task = TaskRecord("task", "t-1", user_id="u-manager", status="RUNNING", started_at=NOW)
    await syncd.apply.touch(approval, NOW, next_poll_at=NOW, tasks=[task], progress_due=NOW)
    final = Final(ApprovalState.CANCELED, "TERMINATED", None, NOW)
    if race:
        results = await asyncio.gather(
            syncd.apply.finish(approval, final, NOW), syncd.progress(NOW, replicas=replicas)
        )
        assert results[0].written
    else:
        assert (await syncd.apply.finish(approval, final, NOW)).written
        assert await syncd.progress(NOW, replicas=replicas) == 0
    assert await syncd.progress(NOW + timedelta(minutes=1), replicas=replicas) == 0
    writes = rig.writes(key)
    assert writes[-1] == (1, STATUS["canceled"]) and writes.count((1, STATUS["canceled"])) == 1
    assert set(writes[:-1]) <= {(1, STATUS["running"])} and len(writes) <= 2
    row = rig.row(key)
    assert row is not None and (row["status"], row["waiting_for"]) == ("CANCELED", None)


async def test_syncd_writes_never_capture(rig: Rig, syncd: Syncd) -> None:
    """A capture whose condition syncd's own writes make true (the status it maps a
    running round to submits, the one of a canceled round cancels) captures nothing of
    them; the same change made by the application does."""
    await rig.capture("NEW.status = 'IN_APPROVAL'", "NEW.status = 'CANCELED'")
    keys = [new_key() for _ in range(3)]
    for key in keys:
        rig.add_row(key)
    approvals = [syncd.running(key) for key in keys]
    task = TaskRecord("task", "t-1", user_id="u-manager", status="RUNNING", started_at=NOW)
    for approval in approvals:
        await syncd.apply.touch(approval, NOW, next_poll_at=NOW, tasks=[task], progress_due=NOW)
    assert await syncd.progress(NOW) == 3
    assert {rig.row(k)["status"] for k in keys} == {"IN_APPROVAL"}  # type: ignore[index]
    final = Final(ApprovalState.CANCELED, "TERMINATED", None, NOW)
    assert (await syncd.apply.finish(approvals[0], final, NOW)).written
    assert await syncd.apply.finish_many([(approvals[1], final)], NOW) is not None
    rig.remove_row(keys[2])
    assert not (await syncd.apply.finish(approvals[2], final, NOW)).written
    rig.add_row(keys[2])
    rig.set_status(keys[2], "IN_APPROVAL")  # the application: captured
    assert (await syncd.retry(NOW + timedelta(minutes=1)))[approvals[2].id] is None
    assert await syncd.writeback.write_back(approvals[0].id, NOW, NOW, force=True) is None
    assert rig.captured() == [(str(keys[2]), "submit")]

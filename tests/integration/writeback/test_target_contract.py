"""The contract of ``syncd.ports.BusinessTarget`` (its docstring), over every implementation.

Each test runs once per rig of ``conftest.RIGS`` through syncd's real stores: apply's
finish (alone, batched, raced by a second replica) and the write-back retry. Outcomes
are generated (states, DingTalk's words, finish times, who decided and remarks with odd
characters), and so are the deliveries: repeated, raced, retried, of several rounds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.dingtalk.models import instance_links
from syncd.domain import ApprovalRef, ApprovalState, Decider, Final
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
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(300)

#: Text as DingTalk may send it: any character PostgreSQL's text and jsonb can hold.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)
REMARKS = st.one_of(
    TEXT,
    st.sampled_from(["", "同意 ✅", 'it\'s "fine"', "a\\b", "%s %(x)s", "--;\n\t", "x" * 2000]),
)
TIMES = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
finals = st.builds(
    Final,
    state=st.sampled_from([ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.CANCELED]),
    dingtalk_status=TEXT,
    dingtalk_result=st.none() | TEXT,
    finished_at=st.none() | TIMES,
    business_id=st.none() | TEXT,
    decider=st.none() | st.builds(Decider, approver=st.none() | TEXT, remark=st.none() | REMARKS),
    url=st.none() | st.just("") | TEXT.map(lambda t: f"https://aflow.dingtalk.com/m?x={t}"),
)
#: How a final word reaches the finish transaction: alone, in a batch, raced by a second
#: replica, or (nothing to finish) a pass of the write-back retry.
DELIVERIES = st.sampled_from(["finish", "batch", "race", "retry"])


def expected(
    syncd: Syncd, approval: ApprovalRef, final: Final, moved_at: datetime
) -> dict[str, Any]:
    """The business row after ``final`` was written (the time it moved when DingTalk gave
    none; who decided and the remark from tasks, none here, when the final does not say):
    nothing left of the round's progress, its links DingTalk's (the event's) else built
    from the corp id, its version the approval's."""
    links = instance_links(CORP, approval.instance_id, url=final.url)
    return {
        "status": STATUS[final.state.value],
        "dingtalk_status": final.dingtalk_status,
        "result": final.dingtalk_result,
        "approver": final.decider.approver if final.decider else None,
        "remark": final.decider.remark if final.decider else None,
        "decided_at": final.finished_at or moved_at,
        "instance_id": approval.instance_id,
        "business_id": final.business_id,
        "syncd_round": approval.round,
        "syncd_seq": syncd.progress_of(approval.id)["progress_seq"],
        "waiting_at": None,
        "waiting_for": None,
        "problem": None,
        "link": links.url,
        "pc_link": links.pc_url,
        "mobile_link": links.mobile_url,
        "changed_at": final.finished_at or moved_at,
    }


async def deliver(syncd: Syncd, how: str, approval: ApprovalRef, final: Final, at: datetime) -> int:
    """Deliver ``final`` once, as ``how`` says; how many deliveries moved the approval."""
    if how == "finish":
        result = await syncd.apply.finish(approval, final, at, retry_at=at)
        assert result.written == result.moved and result.error is None
        return int(result.moved)
    if how == "batch":
        done = await syncd.apply.finish_many([(approval, final)], at)
        assert done is not None
        return int(approval.id in done)
    if how == "race":
        results = await asyncio.gather(
            syncd.apply.finish(approval, final, at), syncd.replica.finish(approval, final, at)
        )
        assert all(r.written == r.moved for r in results)
        return sum(r.moved for r in results)
    errors = await syncd.retry(at)
    assert errors.get(approval.id) is None
    return 0


async def notifications(admin: str, listening: psycopg.AsyncConnection[Any]) -> Counter[str]:
    """The ``syncd_result`` payloads received since LISTEN, up to an end marker sent now."""
    run_sql(admin, "SELECT pg_notify('syncd_result', 'end')")
    seen: Counter[str] = Counter()
    async for notify in listening.notifies(timeout=30):
        if notify.payload == "end":
            return seen
        seen[notify.payload] += 1
    raise AssertionError(f"no end marker; got {seen}")


@EXAMPLES
@given(rounds=st.lists(finals, min_size=1, max_size=3), deliveries=st.lists(DELIVERIES, max_size=5))
async def test_each_round_is_written_once_whatever_the_deliveries(
    rig: Rig, syncd: Syncd, rounds: list[Final], deliveries: list[str]
) -> None:
    key = new_key()
    rig.add_row(key)
    async with await psycopg.AsyncConnection.connect(syncd.admin, autocommit=True) as listening:
        await listening.execute("LISTEN syncd_result")
        approvals = []
        for n, final in enumerate(rounds, start=1):
            approval = syncd.running(key, n)
            approvals.append(approval)
            moved, moved_at = 0, NOW
            for i, how in enumerate(["finish", *deliveries]):
                at = NOW + timedelta(minutes=n, seconds=i)
                if moves := await deliver(syncd, how, approval, final, at):
                    moved, moved_at = moved + moves, at
            assert moved == 1
            assert rig.row(key) == expected(syncd, approval, final, moved_at)
            state = syncd.approval(approval.id)
            assert state["state"] == final.state.value and state["written_back_at"] is not None
            assert syncd.notes(approval.id) == [f"written back to {rig.name}"]
        for approval, final in zip(approvals, rounds, strict=True):  # late duplicates
            assert not (await syncd.apply.finish(approval, final, NOW + timedelta(hours=1))).moved
        seen = await notifications(syncd.admin, listening)
    statuses = [STATUS[final.state.value] for final in rounds]
    assert rig.writes(key) == list(enumerate(statuses, start=1))
    assert seen == Counter({str(a.id): 1 for a in approvals})
    assert not {a.id for a in approvals} & syncd.unwritten()


@EXAMPLES
@given(final=finals, batched=st.booleans(), retries=st.integers(0, 2))
async def test_a_missing_row_leaves_the_approval_final_and_its_outcome_waiting(
    rig: Rig, syncd: Syncd, final: Final, batched: bool, retries: int
) -> None:
    key = new_key()
    approval = syncd.running(key)
    event = syncd.event(approval)
    retry_at = NOW + timedelta(seconds=30)
    if batched:  # nothing of the batch is done; apply then finishes each on its own
        assert await syncd.apply.finish_many([(approval, final)], NOW, inbox_ids=[event]) is None
        assert syncd.approval(approval.id)["state"] == "running" and not syncd.processed(event)
    result = await syncd.apply.finish(approval, final, NOW, inbox_ids=[event], retry_at=retry_at)
    assert result.moved and not result.written
    assert result.error and rig.name in result.error and str(key) in result.error
    state = syncd.approval(approval.id)
    assert state["state"] == final.state.value and state["written_back_at"] is None
    assert (state["last_error_code"], state["last_error_message"]) == (
        "writeback_failed",
        result.error,
    )
    assert (state["writeback_attempts"], state["next_attempt_at"]) == (1, retry_at)
    assert syncd.processed(event) and approval.id in syncd.unwritten()
    assert syncd.notes(approval.id) == [f"write-back failed: {result.error}"]
    for attempt in range(retries):
        errors = await syncd.retry(retry_at + timedelta(seconds=attempt))
        assert str(key) in (errors[approval.id] or "")
        assert syncd.approval(approval.id)["writeback_attempts"] == 2 + attempt
    assert rig.writes(key) == []
    rig.add_row(key)
    assert (await syncd.retry(retry_at + timedelta(minutes=5)))[approval.id] is None
    assert rig.writes(key) == [(1, STATUS[final.state.value])]
    assert rig.row(key) == expected(syncd, approval, final, NOW)
    assert approval.id not in syncd.unwritten()
    assert syncd.notes(approval.id)[-1] == f"written back to {rig.name}"


@EXAMPLES
@given(final=finals, reason=TEXT.filter(str.strip))
async def test_a_failed_write_leaves_nothing_of_it_and_is_retried(
    rig: Rig, syncd: Syncd, final: Final, reason: str
) -> None:
    key = new_key()
    rig.add_row(key)
    untouched = rig.row(key)
    approval = syncd.running(key)
    rig.refuse(reason)
    try:
        result = await syncd.apply.finish(approval, final, NOW, retry_at=NOW)
        assert result.moved and not result.written
        assert result.error and rig.name in result.error
        assert rig.said(reason.strip()) in result.error
        assert syncd.approval(approval.id)["last_error_message"] == result.error
        assert (await syncd.retry(NOW))[approval.id] == result.error
        # The write changed the row and counted itself before it was refused: both undone.
        assert rig.row(key) == untouched and rig.writes(key) == []
    finally:
        rig.refuse(None)
    assert (await syncd.retry(NOW + timedelta(seconds=1)))[approval.id] is None
    assert rig.writes(key) == [(1, STATUS[final.state.value])]
    assert rig.row(key) == expected(syncd, approval, final, NOW)


@EXAMPLES
@given(finals=st.lists(finals, min_size=2, max_size=4), data=st.data())
async def test_one_refused_outcome_in_a_batch_holds_up_no_other(
    rig: Rig, syncd: Syncd, finals: list[Final], data: st.DataObject
) -> None:
    missing = data.draw(st.integers(0, len(finals) - 1), label="missing")
    keys = [new_key() for _ in finals]
    for n, key in enumerate(keys):
        if n != missing:
            rig.add_row(key)
    approvals = [syncd.running(key) for key in keys]
    batch = list(zip(approvals, finals, strict=True))
    assert await syncd.apply.finish_many(batch, NOW) is None
    assert {syncd.approval(a.id)["state"] for a in approvals} == {"running"}
    results = [await syncd.apply.finish(a, f, NOW, retry_at=NOW) for a, f in batch]
    assert [r.written for r in results] == [n != missing for n in range(len(finals))]
    for n, (approval, final) in enumerate(batch):
        written = [] if n == missing else [(1, STATUS[final.state.value])]
        assert rig.writes(keys[n]) == written
        assert (approval.id in syncd.unwritten()) == (n == missing)


@EXAMPLES
@given(final=finals, replays=st.integers(1, 3))
async def test_only_a_forced_replay_writes_a_written_outcome_again(
    rig: Rig, syncd: Syncd, final: Final, replays: int
) -> None:
    key = new_key()
    rig.add_row(key)
    approval = syncd.running(key)
    assert (await syncd.apply.finish(approval, final, NOW)).written
    assert await syncd.writeback.write_back(approval.id, NOW, NOW) is None  # written: no-op
    assert len(rig.writes(key)) == 1
    for _ in range(replays):
        assert await syncd.writeback.write_back(approval.id, NOW, NOW, force=True) is None
    assert rig.writes(key) == [(1, STATUS[final.state.value])] * (1 + replays)
    assert rig.row(key) == expected(syncd, approval, final, NOW)
    assert syncd.notes(approval.id) == [f"written back to {rig.name}"] * (1 + replays)


@EXAMPLES
@given(
    old=finals,
    new=finals,
    took=st.sampled_from(["outcome", "progress"]),
    late=st.sampled_from(["finish", "retry", "replay"]),
)
async def test_an_older_rounds_late_outcome_never_overwrites_a_newer_round(
    rig: Rig, syncd: Syncd, old: Final, new: Final, took: str, late: str
) -> None:
    """Round 2 wrote the row (its outcome, or its progress while it runs); round 1's
    outcome then comes late (DingTalk's word on it, a retry of a refused write, a forced
    replay) and leaves the row as round 2 wrote it, with a note saying why."""
    key = new_key()
    rig.add_row(key)
    first = syncd.running(key, 1)
    if late == "retry":  # refused now, retried after round 2 wrote the row
        rig.refuse("locked")
        try:
            assert not (await syncd.apply.finish(first, old, NOW, retry_at=NOW)).written
        finally:
            rig.refuse(None)
    elif late == "replay":
        assert (await syncd.apply.finish(first, old, NOW)).written
    second = syncd.running(key, 2)
    at = NOW + timedelta(minutes=1)
    if took == "outcome":
        assert (await syncd.apply.finish(second, new, at)).written
    else:
        await syncd.apply.touch(second, at, next_poll_at=at, progress_due=at)
        assert await syncd.progress(at) == 1
    row = rig.row(key)
    shown = rig.writes(key)[-1]
    assert shown[0] == 2
    later = at + timedelta(minutes=1)
    if late == "finish":
        assert (await syncd.apply.finish(first, old, later)).moved
    elif late == "retry":
        assert (await syncd.retry(later)).get(first.id) is None
    else:
        assert await syncd.writeback.write_back(first.id, later, later, force=True) is None
    assert rig.row(key) == row and rig.writes(key)[-1] == shown
    assert syncd.approval(first.id)["written_back_at"] is not None
    assert first.id not in syncd.unwritten()
    assert syncd.notes(first.id)[-1] == (
        f"not written back to {rig.name}: round 2 of the business key has written the row "
        "since, and a round never overwrites a newer one"
    )

"""The write-back sources ``comments`` and ``last_comment`` over every business target.

Each test runs once per rig of ``conftest.RIGS`` through syncd's real stores. The
approvers' comments are DingTalk's ``ADD_REMARK`` operation records as syncd recorded
them (a read of the instance), drawn with odd text and times, mixed with what is not a
comment (an approver's remark with a decision, a task event's remark). The business row
holds the comments syncd knows when it writes: with the outcome (once per round), with
each progress write of an unfinished round, never a stale round's over a newer one's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.domain import ApprovalRef, ApprovalState, Final, TaskRecord
from tests.integration.writeback.conftest import NOW, STATUS, Rig, Syncd, new_key

EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(300)

TEXT = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=30
)
USERS = st.none() | st.sampled_from(["manager1", "张三", "user 2"]) | TEXT
#: DingTalk's records give minutes; syncd writes seconds (UTC).
TIMES = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
).map(lambda at: at.replace(microsecond=0))
#: One comment: (user, at, text).
COMMENT = st.tuples(USERS, TIMES, TEXT)
COMMENTS = st.lists(COMMENT, max_size=4)
FINAL = Final(ApprovalState.APPROVED, "COMPLETED", "agree", NOW, None)


def records(comments: list[tuple[Any, datetime, str]], first: int = 0) -> list[TaskRecord]:
    """The comments as a read of the instance records them (keys ``first``, …), with an
    approver's decision remark and a task event's remark, which are not comments."""
    found = [
        TaskRecord("operation", str(first + n), user, operation="ADD_REMARK", result="NONE",
                   remark=text, finished_at=at)
        for n, (user, at, text) in enumerate(comments)
    ]  # fmt: skip
    decision = TaskRecord("operation", f"d{first}", "boss", operation="EXECUTE_TASK_NORMAL",
                          result="AGREE", remark="ok", finished_at=NOW)  # fmt: skip
    task = TaskRecord("task", f"t{first}", "boss", status="COMPLETED", remark="fine")
    return [*found, decision, task]


def expected(comments: list[tuple[Any, datetime, str]]) -> tuple[list[dict[str, Any]], str | None]:
    """The business row's comments (oldest first; ties in record order) and last comment."""
    ordered = sorted(comments, key=lambda c: c[1])  # stable: ties keep the record order
    written = [
        {"user": user, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "text": text}
        for user, at, text in ordered
    ]
    return written, (ordered[-1][2] if ordered else None)


async def record(
    syncd: Syncd, approval: ApprovalRef, tasks: list[TaskRecord], at: datetime
) -> None:
    """A read of the instance recorded ``tasks`` at ``at`` (its progress due then)."""
    await syncd.apply.touch(approval, at, next_poll_at=at, tasks=tasks, progress_due=at)


@EXAMPLES
@given(rounds=st.lists(COMMENTS, min_size=1, max_size=2), how=st.sampled_from(["read", "with"]))
async def test_the_outcome_carries_its_rounds_comments_in_time_order(
    rig: Rig, syncd: Syncd, rounds: list[list[tuple[Any, datetime, str]]], how: str
) -> None:
    key = new_key()
    rig.add_row(key)
    for n, comments in enumerate(rounds, start=1):
        approval = syncd.running(key, n)
        at = NOW + timedelta(minutes=n)
        tasks = records(comments)
        if how == "read":  # read by a poll before the final word
            await record(syncd, approval, tasks, at)
            tasks = []
        assert (await syncd.apply.finish(approval, FINAL, at, tasks=tasks)).written
        assert rig.comments(key) == expected(comments)  # this round's only
    assert rig.writes(key) == [(n, STATUS["approved"]) for n in range(1, len(rounds) + 1)]


@EXAMPLES
@given(before=COMMENTS, late=st.lists(COMMENT, min_size=1, max_size=3))
async def test_comments_that_arrive_after_the_outcome(
    rig: Rig,
    syncd: Syncd,
    before: list[tuple[Any, datetime, str]],
    late: list[tuple[Any, datetime, str]],
) -> None:
    """Recorded while the outcome waits for its row: the retry writes them. Recorded once
    it is written: not written again (once per round) until a forced replay."""
    key = new_key()
    approval = syncd.running(key)
    result = await syncd.apply.finish(approval, FINAL, NOW, tasks=records(before), retry_at=NOW)
    assert result.moved and not result.written  # no business row yet
    await record(syncd, approval, records(late[:1], first=len(before) + 1), NOW)
    rig.add_row(key)
    assert (await syncd.retry(NOW + timedelta(seconds=1)))[approval.id] is None
    assert rig.comments(key) == expected(before + late[:1])
    await record(syncd, approval, records(late, first=len(before) + 1), NOW)
    assert not (await syncd.apply.finish(approval, FINAL, NOW + timedelta(minutes=1))).moved
    assert await syncd.retry(NOW + timedelta(minutes=10)) == {}
    assert rig.comments(key) == expected(before + late[:1])
    at = NOW + timedelta(minutes=11)
    assert await syncd.writeback.write_back(approval.id, at, at, force=True) is None
    assert rig.comments(key) == expected(before + late)
    assert rig.writes(key) == [(1, STATUS["approved"])] * 2


@EXAMPLES
@given(first=COMMENTS, more=COMMENTS, second=COMMENTS, stale=st.lists(COMMENT, min_size=1))
async def test_progress_carries_the_comments_and_a_stale_round_never_lands(
    rig: Rig,
    syncd: Syncd,
    first: list[tuple[Any, datetime, str]],
    more: list[tuple[Any, datetime, str]],
    second: list[tuple[Any, datetime, str]],
    stale: list[tuple[Any, datetime, str]],
) -> None:
    key = new_key()
    rig.add_row(key)
    one = syncd.running(key, 1)
    await record(syncd, one, records(first), NOW)
    assert await syncd.progress(NOW) >= 1
    assert rig.comments(key) == expected(first)
    await record(syncd, one, records(first + more), NOW + timedelta(seconds=1))
    await syncd.progress(NOW + timedelta(seconds=1))
    assert rig.comments(key) == expected(first + more)
    two = syncd.running(key, 2)
    await record(syncd, two, records(second), NOW + timedelta(seconds=2))
    await syncd.progress(NOW + timedelta(seconds=2), replicas=2)
    assert rig.comments(key) == expected(second)
    # Round 1's comments come late (a poll read them): its business row is round 2's now.
    await record(syncd, one, records(first + more + stale), NOW + timedelta(seconds=3))
    await syncd.progress(NOW + timedelta(seconds=3), replicas=2)
    assert rig.comments(key) == expected(second)
    assert (await syncd.apply.finish(two, FINAL, NOW + timedelta(seconds=4))).written
    assert rig.comments(key) == expected(second)
    assert [round_ for round_, _ in rig.writes(key)][-1] == 2

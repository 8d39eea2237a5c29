"""The write-back sources ``comments`` and ``last_comment``, end to end: the business row
holds what the simulator records as the instance's comments (its ``ADD_REMARK`` records),
with each live progress write and with the outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .conftest import LEAVE_KIND, Env

KIND: dict[str, Any] = {
    **LEAVE_KIND,
    "write_back": {
        **LEAVE_KIND["write_back"],
        "columns": {
            **LEAVE_KIND["write_back"]["columns"],
            "comments": "comments",
            "last_comment": "last_comment",
        },
        "progress": True,
    },
}
TEXT = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=40,
).filter(str.strip)
#: (who, text, seconds after the previous comment)
COMMENTS = st.lists(
    st.tuples(st.sampled_from(["manager1", "u1", "hr1"]), TEXT, st.integers(0, 150)), max_size=4
)


def simulator_comments(env: Env, instance_id: str) -> list[dict[str, Any]]:
    """The simulator's record of the comments, as DingTalk's GET gives it (minutes, UTC)."""
    return [
        {"user": r.user_id, "at": _minute(r.date), "text": r.remark}
        for r in env.sim.instance(instance_id).records
        if r.type == "ADD_REMARK"
    ]


def _minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def written(env: Env, key: int) -> tuple[Any, str | None]:
    [(comments, last)] = env.app_sql(
        "SELECT comments, last_comment FROM app.leave_request WHERE id = %s", key
    )
    return comments, last


@settings(
    max_examples=4,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example runs a daemon
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=COMMENTS, after=COMMENTS)
async def test_the_row_holds_the_simulators_comments_live_and_with_the_outcome(
    env: Env, before: list[tuple[str, str, int]], after: list[tuple[str, str, int]]
) -> None:
    env.app_sql(
        "ALTER TABLE app.leave_request ADD COLUMN IF NOT EXISTS comments jsonb, "
        "ADD COLUMN IF NOT EXISTS last_comment text"
    )
    env.grant_write_back(KIND)
    key = env.submit_leave(applicant="u1", days=5)  # no rule decides it
    async with env.daemon(env.settings(kinds={"leave": KIND})) as daemon:
        await daemon.drain()
        [(instance_id,)] = env.sql(
            "SELECT instance_id FROM syncd.approval WHERE business_key = %s", str(key)
        )
        assert written(env, key) == ([], None)
        for user, text, wait in before:
            await env.advance(wait)
            env.sim.comment(instance_id, user, text)
        await env.advance(120)  # quiet: a poll reads the records
        await daemon.drain()
        expected = simulator_comments(env, instance_id)
        assert written(env, key) == (expected, expected[-1]["text"] if expected else None)
        for user, text, wait in after:
            await env.advance(wait)
            env.sim.comment(instance_id, user, text)
        while env.sim.instance(instance_id).status == "RUNNING":
            env.sim.approve(instance_id, remark="同意")  # a decision's remark is no comment
        await env.advance(24 * 3600)  # a poll finds it decided
        await daemon.drain()
    expected = simulator_comments(env, instance_id)
    assert len(expected) == len(before) + len(after)
    assert written(env, key) == (expected, expected[-1]["text"] if expected else None)
    [(status,)] = env.app_sql("SELECT approval_status FROM app.leave_request WHERE id = %s", key)
    assert status == "APPROVED"
    history = env.sql(
        "SELECT count(*) FROM syncd.approval_event e JOIN syncd.approval a "
        "ON a.id = e.approval_id WHERE a.business_key = %s AND e.message LIKE 'written back%%'",
        str(key),
    )
    assert history == [(1,)]

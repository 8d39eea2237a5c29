"""Outbox comments reach the running instance exactly once; approvers' comments come back."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from syncd.app_comments import comment_stage

from .conftest import Env


def comment(env: Env, key: int, text: str, **extra: str) -> None:
    """A comment row, as the application writes it."""
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, action, payload) "
        "VALUES ('leave', %s, 'comment', %s)",
        str(key),
        json.dumps({"text": text, **extra}),
    )


def remarks(env: Env, instance_id: str) -> list[tuple[str, str]]:
    """The simulator's ADD_REMARK records: (user, text)."""
    records = env.sim.instance(instance_id).records
    return [(r.user_id, r.remark) for r in records if r.type == "ADD_REMARK"]


async def test_a_comment_held_for_a_round_not_created_yet_is_sent_once(env: Env) -> None:
    key = env.submit_leave(applicant="u1")
    comment(env, key, "金额改为 300 元 ✓")  # ingested with the submit: the round is pending
    async with env.daemon() as daemon:
        await daemon.drain()
        await daemon.drain()
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    assert remarks(env, instance_id) == [("u1", "金额改为 300 元 ✓")]
    assert env.sql("SELECT state, sent_as, in_doubt FROM syncd.comment") == [("sent", "u1", False)]
    [(calls,)] = env.sql("SELECT calls FROM syncd.usage WHERE purpose = 'comment'")
    assert calls == 1


async def test_comments_go_in_order_as_the_named_user(env: Env) -> None:
    key = env.submit_leave(applicant="u1")
    async with env.daemon() as daemon:
        await daemon.drain()
        for n in range(3):
            comment(env, key, f"note {n}", user="manager1")
        comment(env, key, "same")
        comment(env, key, "same")
        await daemon.drain()
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    expected = [("manager1", f"note {n}") for n in range(3)] + [("u1", "same")] * 2
    assert remarks(env, instance_id) == expected


async def test_a_crash_after_dingtalk_took_the_comment_sends_it_not_twice(env: Env) -> None:
    key = env.submit_leave(applicant="u1")
    async with env.daemon() as daemon:
        await daemon.drain()
        comment(env, key, "only once")
        await daemon.app.stages["ingest"].run_once()
        stage = comment_stage(daemon.app)
        now = env.clock.now()
        [item] = await stage.store.claim_comments(
            5, now, "dead-replica", now + timedelta(seconds=60)
        )
        await daemon.app.client.add_comment(item.instance_id, item.text, "u1")  # then: killed
        await env.advance(61)
        await daemon.drain()
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    assert remarks(env, instance_id) == [("u1", "only once")]
    assert env.sql("SELECT state, attempts FROM syncd.comment") == [("sent", 2)]


class LoseCommentAnswers(httpx.AsyncBaseTransport):
    """DingTalk takes the comment, and the answer is lost on the way back (once)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/processInstances/comments") and not self.lost:
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


async def test_a_lost_answer_is_settled_by_reading_the_instance(env: Env) -> None:
    key = env.submit_leave(applicant="u1")
    transport = LoseCommentAnswers(httpx.ASGITransport(app=env.sim.app))
    async with env.daemon(transport=transport) as daemon:
        await daemon.drain()
        comment(env, key, "lost answer")
        await daemon.drain()
        assert env.sql("SELECT state, in_doubt FROM syncd.comment") == [("waiting", True)]
        await env.advance(3600)
        await daemon.drain()
    [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
    assert transport.lost == 1
    assert remarks(env, instance_id) == [("u1", "lost answer")]
    assert env.sql("SELECT state FROM syncd.comment") == [("sent",)]


async def test_comments_that_cannot_go_are_said_so(env: Env) -> None:
    comment(env, 999, "never submitted")
    key = env.submit_leave(applicant="u1")
    async with env.daemon() as daemon:
        await daemon.drain()
        comment(env, key, "")
        comment(env, key, "x" * 1025)
        [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval WHERE state = 'running'")
        env.sim.terminate(instance_id)
        await env.advance(86400)  # syncd learns it by polling
        await daemon.drain()
        assert env.sql("SELECT state FROM syncd.approval WHERE instance_id = %s", instance_id) == [
            ("canceled",)
        ]
        comment(env, key, "too late")
        await daemon.drain()
    assert remarks(env, instance_id) == []
    rows = env.sql("SELECT state, last_error_message FROM syncd.comment ORDER BY id")
    assert [state for state, _ in rows] == ["failed", "failed"]
    assert "text: empty" in rows[0][1] and "1025 characters" in rows[1][1]
    [(parked,)] = env.sql("SELECT last_error_code FROM syncd.approval WHERE business_key = '999'")
    assert parked == "nothing_to_comment"
    notes = env.sql("SELECT message FROM syncd.approval_event WHERE message LIKE '%%too late%%'")
    assert notes == [] and env.sql(
        "SELECT count(*) FROM syncd.approval_event WHERE message LIKE '%%comment not sent%%'"
    ) == [(1,)]


async def test_approvers_comments_come_back_into_syncds_tables(env: Env) -> None:
    key = env.submit_leave(applicant="u1")
    async with env.daemon() as daemon:
        await daemon.drain()
        [(instance_id,)] = env.sql("SELECT instance_id FROM syncd.approval")
        env.sim.comment(instance_id, "manager1", "请补充病假条 📎")
        comment(env, key, "已补充")
        await daemon.drain()
        env.sim.approve(instance_id, remark="同意")
        await env.advance(1)
        await daemon.drain()
        await env.advance(3600 * 24)
        await daemon.drain()
    rows = env.sql(
        "SELECT source, operation, user_id, text FROM syncd.comments "
        "WHERE source = 'dingtalk' ORDER BY at, text"
    )
    assert ("dingtalk", "ADD_REMARK", "manager1", "请补充病假条 📎") in rows
    assert ("dingtalk", "ADD_REMARK", "u1", "已补充") in rows
    assert [r for r in rows if r[3] == "同意"], rows
    outbox = env.sql("SELECT source, state, text FROM syncd.comments WHERE source = 'outbox'")
    assert outbox == [("outbox", "sent", "已补充")]

"""The guarantees the README promises: each invariant, with tests that try to break it."""

from __future__ import annotations

import json

import httpx
import psycopg

from syncd.web import DaemonWeb

from .conftest import APP_KEY, LEAVE_KIND

# The daemon's write-back fires it: it runs as its owner, the application, so the daemon
# needs no grant on app.writes (docs/security.md, "Business tables").
AUDIT = """
CREATE TABLE app.writes (leave_id int, approval_status text);
CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.approval_status IS DISTINCT FROM OLD.approval_status THEN
        INSERT INTO app.writes VALUES (NEW.id, NEW.approval_status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER UPDATE ON app.leave_request
    FOR EACH ROW EXECUTE FUNCTION app.audit();
"""


def states(env):
    return dict(env.sql("SELECT business_key, state FROM syncd.approval WHERE round = 1"))


def outbox(env, kind, key, payload, action="submit", originator=None):
    """An outbox row the application writes itself (it is in syncd_application)."""
    env.app_sql(
        "INSERT INTO syncd.outbox (kind, business_key, action, payload, originator) "
        "VALUES (%s, %s, %s, %s, %s)",
        kind,
        key,
        action,
        json.dumps(payload),
        originator,
    )


async def test_bad_rows_are_parked_with_precise_errors_while_good_rows_flow(env):
    good = env.submit_leave(days=2)
    leave = {
        "leave_type": "年假",
        "start_date": "2026-01-10",
        "end_date": "2026-01-11",
        "reason": "rest",
    }
    outbox(env, "travel", "t1", {"x": 1})
    outbox(env, "leave", "no-days", {**leave, "applicant": "u1"})
    outbox(env, "leave", "bad-type", {**leave, "applicant": "u1", "days": 1, "leave_type": "婚假"})
    outbox(env, "leave", "bad-number", {**leave, "applicant": "u1", "days": "three"})
    outbox(env, "leave", "nobody", {**leave, "applicant": "ghost", "days": 1})
    outbox(
        env,
        "leave",
        "sql",
        {**leave, "applicant": "u1", "days": 1, "reason": "'); DROP TABLE x;--"},
    )
    outbox(env, "leave", "huge", {**leave, "applicant": "u1", "days": 1, "reason": "x" * 70000})
    outbox(env, "leave", "k", {**leave, "applicant": "u1", "days": 1}, action="archive")
    no_reason = {k: v for k, v in leave.items() if k != "reason"}
    outbox(env, "leave", "optional", {**no_reason, "applicant": "u2", "days": 1})
    async with env.daemon() as daemon:
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
    errors = dict(env.sql("SELECT business_key, last_error_message FROM syncd.parked"))
    assert "kind 'travel' is not configured" in errors["t1"]
    assert "form '天数': payload has no value at 'days'" in errors["no-days"]
    assert "'婚假' is not an option; options are: 年假, 事假, 病假" in errors["bad-type"]
    assert "expected a number, got 'three'" in errors["bad-number"]
    assert "check the originator 'ghost'" in errors["nobody"]
    assert "DingTalk accepts at most 65535" in errors["huge"]
    assert "action 'archive' is not 'submit', 'cancel' or 'comment'" in errors["k"]
    final = states(env)
    assert final[str(good)] == "approved" and final["sql"] == "approved"
    assert final["optional"] == "approved"  # an optional component without a value is left out
    assert env.sql("SELECT count(*) FROM app.leave_request WHERE approval_status = 'APPROVED'") == [
        (1,)
    ]


async def test_lost_create_response_is_reconciled_into_exactly_one_instance(env):
    env.sim.faults.update(create_response_lost_rate=1.0, endpoints=["workflow.create"])
    keys = [env.submit_leave(applicant=f"u{i}", days=1) for i in (1, 2, 3)]
    async with env.daemon() as daemon:
        await daemon.drain()
        assert set(states(env).values()) == {"unknown"}
        env.sim.faults.reset()
        await env.advance(11)  # unknown_grace
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
    assert len(env.sim.instances()) == 3
    assert set(states(env).values()) == {"approved"}
    adopted = env.sql("SELECT count(*) FROM syncd.approval_event WHERE message LIKE 'instance %%'")
    assert adopted == [(3,)]
    assert [k for (k,) in env.sql("SELECT id FROM app.leave_request ORDER BY id")] == keys


async def test_create_that_never_happened_is_submitted_again_once(env):
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        assert set(states(env).values()) == {"unknown"}
        env.sim.faults.reset()
        await env.advance(11)
        await daemon.drain()
    assert len(env.sim.instances()) == 1
    assert set(states(env).values()) == {"running"}
    [(attempts,)] = env.sql("SELECT attempts FROM syncd.approval")
    assert attempts == 2


async def test_duplicated_and_reordered_events_write_back_exactly_once(env):
    env.app_sql(AUDIT)
    env.sim.faults.update(event_duplicate_rate=1.0, event_reorder_rate=0.5, reorder_delay=5)
    settings = env.settings(
        events={
            "stream": False,
            "callback": {
                "enabled": True,
                "token": "simtoken123",
                "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            },
        },
        polling={"quiet_after": 10},
    )
    keys = [env.submit_leave(applicant=f"u{1 + i % 3}", days=1 + i % 3) for i in range(6)]
    async with env.daemon(settings) as daemon:
        app = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
        )
        env.sim.callbacks.set_client(app)
        env.sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
        await daemon.drain()
        for _ in range(8):
            await env.advance(20)
            await daemon.drain()
    writes = env.sql("SELECT leave_id, count(*) FROM app.writes GROUP BY leave_id ORDER BY 1")
    assert writes == [(k, 1) for k in keys]
    duplicates = env.sql("SELECT count(*) FROM syncd.inbox")[0][0]
    assert duplicates > 0 and set(states(env).values()) == {"approved"}
    regressed = env.sql(
        "SELECT count(*) FROM syncd.approval_event "
        "WHERE from_state IN ('approved', 'rejected', 'canceled')"
    )
    assert regressed == [(0,)]


async def test_cancel_right_after_submit_never_reaches_dingtalk(env):
    key = env.submit_leave(days=1)
    outbox(env, "leave", str(key), {}, action="cancel")
    async with env.daemon() as daemon:
        await daemon.drain()
    assert env.sim.instances() == []
    assert states(env) == {str(key): "canceled"}
    assert env.sql("SELECT approval_status FROM app.leave_request") == [("CANCELED",)]
    [(written,)] = env.sql("SELECT written_back_at IS NOT NULL FROM syncd.approval")
    assert written


async def test_cancel_of_a_running_instance_terminates_it_after_the_revoke_guard(env):
    key = env.submit_leave(days=9)  # left for a person
    async with env.daemon() as daemon:
        await daemon.drain()
        env.app_sql("UPDATE app.leave_request SET status = 'withdrawn'")
        outbox(env, "leave", str(key), {}, action="cancel")
        await daemon.drain()
        assert states(env) == {str(key): "running"}  # DingTalk refuses revokes for 15 s
        await env.advance(16)
        await daemon.drain()
    [instance] = env.sim.instances()
    assert instance.status == "TERMINATED"
    assert env.sql("SELECT approval_status FROM app.leave_request") == [("CANCELED",)]


async def test_resubmitting_a_finished_request_starts_a_new_round(env):
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
        env.app_sql("UPDATE app.leave_request SET status = 'draft'")
        env.app_sql("UPDATE app.leave_request SET status = 'submitted', days = 2")
        await daemon.drain()
    rounds = env.sql("SELECT round, state FROM syncd.approval ORDER BY round")
    assert rounds == [(1, "approved"), (2, "running")]
    assert len(env.sim.instances()) == 2


async def test_resubmit_while_running_is_rejected_or_supersedes(env):
    key = env.submit_leave(days=9)
    async with env.daemon() as daemon:
        await daemon.drain()
        outbox(env, "leave", str(key), {"applicant": "u1", "days": 2})
        await daemon.drain()
    [(state, error)] = env.sql(
        "SELECT state, last_error_message FROM syncd.approval WHERE round = 2"
    )
    assert state == "invalid" and "still running" in error and "supersede" in error

    kind = {**LEAVE_KIND, "on_resubmit": "supersede"}
    settings = env.settings(kinds={"leave": kind})
    async with env.daemon(settings) as daemon:
        env.submit_leave(days=9)
        await daemon.drain()
        env.app_sql("UPDATE app.leave_request SET status = 'draft' WHERE id = 2")
        env.app_sql("UPDATE app.leave_request SET status = 'submitted' WHERE id = 2")
        await daemon.drain()
        assert dict(
            env.sql("SELECT round, state FROM syncd.approval WHERE business_key = '2'")
        ) == {1: "running", 2: "pending"}
        await env.advance(16)
        await daemon.drain()
    rounds = dict(env.sql("SELECT round, state FROM syncd.approval WHERE business_key = '2'"))
    assert rounds == {1: "canceled", 2: "running"}


async def test_one_ingest_batch_decides_each_row_against_the_round_before_it(env):
    """Rows of one business key in one batch: each sees the round the previous row made."""
    kind = {**LEAVE_KIND, "on_resubmit": "supersede"}
    payload = {
        "applicant": "u1",
        "days": 9,  # left for a person: the instances keep running
        "leave_type": "年假",
        "start_date": "2026-01-10",
        "end_date": "2026-01-18",
        "reason": "rest",
    }
    for key, action in [("7", "submit"), ("8", "submit"), ("7", "submit"), ("9", "cancel")]:
        outbox(env, "leave", key, payload, action=action)
    outbox(env, "leave", "7", payload)
    async with env.daemon(env.settings(kinds={"leave": kind})) as daemon:
        assert await daemon.app.stages["ingest"].run_once() == 5
        rows = env.sql(
            "SELECT business_key, round, state, cancel_requested_at IS NOT NULL "
            "FROM syncd.approval ORDER BY business_key, round"
        )
        assert rows == [
            ("7", 1, "pending", True),
            ("7", 2, "pending", True),
            ("7", 3, "pending", False),
            ("8", 1, "pending", False),
            ("9", 1, "invalid", False),
        ]
        notes = env.sql(
            "SELECT a.round, e.event_type, e.message FROM syncd.approval_event e "
            "JOIN syncd.approval a ON a.id = e.approval_id "
            "WHERE a.business_key = '7' ORDER BY e.id"
        )
        assert [(r, t) for r, t, _ in notes] == [
            (1, "transition"),
            (1, "note"),
            (2, "transition"),
            (2, "note"),
            (3, "transition"),
        ]
        assert all(
            m.startswith(("captured from outbox row", "cancel requested")) for *_, m in notes
        )
        await daemon.drain()
    assert dict(env.sql("SELECT round, state FROM syncd.approval WHERE business_key = '7'")) == {
        1: "canceled",
        2: "canceled",
        3: "running",
    }
    assert len(env.sim.instances()) == 2  # keys 7 (round 3) and 8


async def test_transient_errors_back_off_then_the_approval_is_dead(env):
    env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.schema"])
    settings = env.settings(pipeline={"max_attempts": 3, "retry_base": 1, "retry_cap": 4})
    env.submit_leave(days=1)
    async with env.daemon(settings) as daemon:
        for _ in range(4):
            await daemon.drain()
            await env.advance(5)
        await daemon.drain()
    [(state, attempts, code)] = env.sql(
        "SELECT state, attempts, last_error_code FROM syncd.approval"
    )
    assert (state, attempts, code) == ("dead", 3, "systemError")
    assert env.sim.instances() == []


async def test_throttling_waits_the_hinted_time_without_spending_attempts(env):
    env.sim.faults.update(error_429_rate=1.0, endpoints=["workflow.create"])
    env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        [(state, attempts)] = env.sql("SELECT state, attempts FROM syncd.approval")
        assert (state, attempts) == ("pending", 0)
        env.sim.faults.reset()
        await env.advance(2)
        await daemon.drain()
    assert states(env) == {"1": "running"} and len(env.sim.instances()) == 1


async def test_quota_exhausted_pauses_calls_until_resumed(env):
    env.sim.faults.update(monthly_quota=3)
    for i in range(3):
        env.submit_leave(applicant=f"u{i + 1}", days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        paused = await daemon.app.pause()
        assert paused is not None and paused.reason == "quota"
        readiness = await DaemonWeb(daemon.app).readiness()
        assert readiness["dingtalk"] == {"ok": False, "paused": "quota", "until": str(paused.until)}
        calls_while_paused = sum(env.sim.calls.values())
        await env.advance(3600)
        await daemon.drain()
        assert sum(env.sim.calls.values()) == calls_while_paused
        env.sim.faults.update(monthly_quota=None)
        await daemon.app.pauses.resume()
        await daemon.drain()
    assert set(states(env).values()) <= {"running", "approved"}
    assert len(env.sim.instances()) == 3
    [(attempts,)] = env.sql("SELECT max(attempts) FROM syncd.approval")
    assert attempts == 1


async def test_no_transaction_or_row_lock_is_held_while_dingtalk_is_called(env):
    """Every request DingTalk receives is checked from outside: no syncd session is inside
    a transaction, and every approval row can be locked at once (NOWAIT)."""
    seen: list[tuple[int, bool]] = []

    def observe() -> None:
        with psycopg.connect(env.admin_dsn) as conn:  # sees every session
            [(open_tx,)] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'syncd%%' AND state LIKE 'idle in transaction%%'"
            ).fetchall()
            try:
                conn.execute("SELECT id FROM syncd.approval FOR UPDATE NOWAIT").fetchall()
                free = True
            except psycopg.errors.LockNotAvailable:
                free = False
        seen.append((open_tx, free))

    class Observing(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            observe()
            return await self.inner.handle_async_request(request)

    for i in range(3):
        env.submit_leave(applicant=f"u{i + 1}", days=1)
    outbox(env, "leave", "1", {}, action="cancel")
    daemon = env.daemon(env.settings(pipeline={"concurrency": 1}))
    daemon.app.transport = Observing(httpx.ASGITransport(app=env.sim.app))
    async with daemon:
        await daemon.drain()
        await env.advance(16)
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
    assert len(seen) >= 5  # token, schema, creates and polls
    assert set(seen) == {(0, True)}
    assert set(states(env).values()) == {"approved", "canceled"}

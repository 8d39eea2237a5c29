from __future__ import annotations

import httpx

from .conftest import APP_KEY


async def test_polling_alone_carries_a_request_to_its_written_back_outcome(env):
    key = env.submit_leave(days=2)
    async with env.daemon() as daemon:
        summary = await daemon.drain()
        assert summary.handled["ingest"] == 1 and summary.handled["submit"] == 1
        [instance] = env.sim.instances(process_code="PROC-SIM-LEAVE")
        assert instance.originator == "u1"
        await env.advance(120)  # the rule approves after 30 s; polling starts after 60 s
        await daemon.drain()
    [(status, instance_id, decided)] = env.sql(
        "SELECT approval_status, instance_id, decided_at FROM app.leave_request WHERE id = %s", key
    )
    assert status == "APPROVED" and instance_id == instance.instance_id and decided is not None
    [(state, written)] = env.sql("SELECT state, written_back_at IS NOT NULL FROM syncd.approval")
    assert (state, written) == ("approved", True)


CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


async def test_callbacks_deliver_outcomes_without_polling(env):
    settings = env.settings(events={"stream": False, "callback": CALLBACK})
    approved, refused = env.submit_leave(days=2), env.submit_leave(days=8)
    revoked = env.submit_leave(days=9)
    async with env.daemon(settings) as daemon:
        app = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
        )
        env.sim.callbacks.set_client(app)
        env.sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
        await daemon.drain()
        [(refused_instance,)] = env.sql(
            "SELECT instance_id FROM syncd.approval WHERE business_key = %s", str(refused)
        )
        env.sim.refuse(refused_instance, remark="too long")
        [(revoked_instance,)] = env.sql(
            "SELECT instance_id FROM syncd.approval WHERE business_key = %s", str(revoked)
        )
        env.sim.terminate(revoked_instance)  # the originator revokes it in DingTalk
        await env.advance(120)  # the leave rule approves short requests, 30 s per node
        await daemon.drain()
    rows = env.sql("SELECT id, approval_status FROM app.leave_request ORDER BY id")
    assert rows == [(approved, "APPROVED"), (refused, "REJECTED"), (revoked, "CANCELED")]
    assert env.sql("SELECT DISTINCT channel FROM syncd.inbox") == [("callback",)]
    assert env.sql("SELECT count(*) FROM syncd.approval_event WHERE endpoint = 'get'") == [(0,)]
    [(remark, approver)] = env.sql(
        "SELECT remark, user_id FROM syncd.task WHERE result = 'REFUSE' AND record_type = 'task'"
    )
    assert remark == "too long" and approver == "manager1"

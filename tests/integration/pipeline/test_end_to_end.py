from __future__ import annotations


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

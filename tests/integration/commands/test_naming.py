"""Every command that acts on an approval takes its id or ``KIND KEY`` (``--round N``; by
default the latest round, for ``cancel`` the active one, for ``show`` every round)."""

from __future__ import annotations

from .test_repair import approval, lost_write_back


async def test_show_retry_cancel_and_replay_by_id_or_by_key(world, cli):
    parked = world.submit_leave(applicant="left1")
    running = world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.drain()
    parked_id, running_id = approval(world, parked)[0], approval(world, running)[0]

    code, out, _ = await cli("show", str(running_id))
    assert code == 0 and out.startswith(f"leave {running} round 1 (approval {running_id},")
    code, out, _ = await cli("show", "leave", str(running), "--round", "1")
    assert code == 0 and f"(approval {running_id}," in out
    code, _, err = await cli("show", "leave", str(running), "--round", "2")
    assert code == 1 and f"no approval for leave {running} round 2" in err
    code, _, err = await cli("show", "424242")
    assert code == 1 and "approval 424242 does not exist" in err

    code, out, _ = await cli("retry", "leave", str(parked))
    assert code == 0 and f"approval {parked_id} (leave {parked} round 1): invalid -> pending" in out
    code, _, err = await cli("retry", "leave", "no-such-key")
    assert code == 1 and "no approval for leave no-such-key: check the kind and the key" in err

    code, out, _ = await cli("cancel", "leave", str(parked), "--round", "1")
    assert code == 0 and "never submitted, the daemon drops it" in out
    code, out, _ = await cli("cancel", str(running_id))
    assert code == 0 and f"cancel requested for leave {running} round 1" in out
    async with world.daemon() as daemon:
        await world.advance(20)
        await daemon.drain()
    assert [approval(world, k)[1] for k in (parked, running)] == ["canceled", "canceled"]
    code, _, err = await cli("cancel", str(running_id))
    assert code == 1
    assert f"approval {running_id} (leave {running} round 1) is canceled, not pending" in err


async def test_replay_by_key(world, cli):
    key, approval_id = await lost_write_back(world)
    world.app_sql(
        "INSERT INTO app.leave_request (id, applicant, leave_type, start_date, end_date, days, "
        "status) VALUES (%s, 'u1', '年假', '2026-01-10', '2026-01-11', 2, 'draft')",
        key,
    )
    code, out, _ = await cli("replay", "leave", str(key))
    assert code == 0 and f"approval {approval_id} (leave {key} round 1), approved: written" in out
    code, out, _ = await cli("replay", "leave", str(key), "--round", "1", "--force")
    assert code == 0 and "written back again" in out

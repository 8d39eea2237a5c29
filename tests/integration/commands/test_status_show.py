"""``syncd status``, ``syncd show`` and ``syncd resume`` against a world the daemon worked in."""

from __future__ import annotations

import json
from datetime import timedelta

from syncd.db.store import PostgresControlStore
from syncd.pipeline.pauses import Pauses

from .conftest import config_data


async def work(world):
    """One request parked (DingTalk refuses an inactive originator), one approved and
    written back, one still running."""
    parked = world.submit_leave(applicant="left1")
    approved = world.submit_leave(days=2)
    running = world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.drain()
        await world.advance(120)
        await daemon.drain()
    return parked, approved, running


async def test_status_counts_states_usage_and_what_needs_attention(world, cli):
    code, out, _ = await cli("status")
    assert code == 0 and "leave  -" in out and "nothing needs attention" in out
    assert "DingTalk calls in " in out and ": 0 of 5000 (0.0%)" in out  # the default quota
    cli.configure(config_data(world.daemon_dsn, dingtalk={"monthly_quota": 0}))
    code, out, _ = await cli("status")
    assert code == 0 and ": 0 (no monthly quota)" in out
    cli.configure(config_data(world.daemon_dsn, dingtalk={"monthly_quota": 5000}))
    await work(world)
    world.app_sql("INSERT INTO syncd.outbox (kind, business_key) VALUES ('leave', 'later')")

    code, out, _ = await cli("status")
    assert code == 0
    assert "leave  running       1" in out and "leave  approved      1" in out
    assert "leave  invalid       1" in out
    assert "leave: 1 outbox rows not ingested yet" in out
    assert "DingTalk calls in " in out and " of 5000 (" in out and "create 3" in out
    assert "leave: 1 parked (invalid or dead" in out
    assert "`syncd retry --kind leave --all-parked`" in out

    code, _, _ = await cli("status", "--check")
    assert code == 1

    code, out, _ = await cli("status", "--json", "--kind", "leave")
    report = json.loads(out)
    leave = report["kinds"]["leave"]
    assert {s: v["count"] for s, v in leave["states"].items()} == {
        "running": 1,
        "approved": 1,
        "invalid": 1,
    }
    assert (leave["parked"], leave["unwritten"], leave["outbox_waiting"]) == (1, 0, 1)
    assert report["dingtalk"]["calls"]["create"] == 3
    assert report["dingtalk"]["monthly_quota"] == 5000
    assert report["dingtalk"]["paused"] is None

    code, out, _ = await cli("status", "--kind", "expense")
    assert code == 0 and "leave" not in out


async def test_status_check_is_quiet_when_all_is_well(world, cli):
    key = world.submit_leave(days=2)
    async with world.daemon() as daemon:
        await daemon.drain()
        await world.advance(120)
        await daemon.drain()
    assert key
    code, out, _ = await cli("status", "--check")
    assert code == 0 and "nothing needs attention" in out


async def test_a_pause_shows_in_status_and_resume_lifts_it(world, cli):
    async with world.daemon() as daemon:
        await Pauses(daemon.app.control).quota_exhausted(world.clock.now())
    code, out, _ = await cli("status", "--check")
    assert code == 1
    assert "DingTalk calls: paused (quota) until " in out
    assert "`syncd resume` once the cause is fixed" in out

    code, out, _ = await cli("resume")
    assert code == 0
    assert "DingTalk calls resumed (they were paused: quota until " in out
    assert "the next call pauses them again" in out
    code, out, _ = await cli("resume")
    assert code == 0 and "were not paused; nothing to do" in out
    code, out, _ = await cli("status", "--json")
    assert json.loads(out)["dingtalk"]["paused"] is None


async def test_an_auth_pause_is_resumed_the_same_way(world, cli):
    async with world.daemon() as daemon:
        control = PostgresControlStore(daemon.app.pool)
        await Pauses(control).auth_failed(world.clock.now() + timedelta(seconds=5), "bad secret")
    code, out, _ = await cli("resume")
    assert code == 0 and "(they were paused: auth until " in out


async def test_show_tells_a_whole_story(world, cli):
    parked, approved, _ = await work(world)
    code, out, _ = await cli("show", "leave", str(approved))
    assert code == 0
    assert f"leave {approved} round 1 (approval 2, outbox row 2): approved" in out
    assert "DingTalk says COMPLETED agree" in out
    assert "(new) -> pending  captured from outbox row 2" in out
    assert "submitting -> running  instance " in out
    assert "running -> approved  DingTalk COMPLETED agree" in out
    assert "note  written back to app.leave_request" in out
    assert "written back     " in out
    assert "EXECUTE_TASK_NORMAL AGREE  remark: 同意" in out

    code, out, _ = await cli("show", "leave", str(parked))
    assert code == 0 and ": invalid" in out and "error            invalidParameter:" in out

    code, out, _ = await cli("show", "leave", str(approved), "--json")
    [data] = json.loads(out)
    assert data["state"] == "approved" and data["instance_id"]
    assert [h["to_state"] for h in data["history"] if h["event_type"] == "transition"] == [
        "pending",
        "submitting",
        "running",
        "approved",
    ]
    assert any(t["remark"] == "同意" for t in data["tasks"])


async def test_show_of_an_unknown_key_or_round_exits_1(world, cli):
    await work(world)
    code, out, err = await cli("show", "leave", "999")
    assert code == 1 and out == ""
    assert "no approval for leave 999: check the kind and the key" in err
    code, _, err = await cli("show", "leave", "1", "--round", "2")
    assert code == 1 and "no approval for leave 1 round 2" in err


async def test_a_refused_live_status_write_needs_attention(world, cli):
    world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.drain()
    code, out, _ = await cli("status", "--check")
    assert code == 0, out
    # As the write-back stage records a refusal (the business table refused the write).
    world.sql(
        "UPDATE syncd.approval SET progress_error = 'the business row is missing' "
        "WHERE state = 'running'"
    )
    code, out, _ = await cli("status", "--check")
    assert code == 1
    assert "leave: 1 live-status writes refused by the business table" in out
    assert "syncd.progress_unwritten" in out
    code, out, _ = await cli("status", "--json")
    assert json.loads(out)["kinds"]["leave"]["progress_unwritten"] == 1

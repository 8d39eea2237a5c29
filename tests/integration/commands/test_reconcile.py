"""``syncd reconcile``: the command line against the simulator served on loopback HTTP."""

from __future__ import annotations

import io

import pytest

from syncd.commands.operator import parse_duration
from syncd.commands.reconcile import Progress
from syncd.errors import ConfigError
from syncd.pipeline.pauses import Pauses

from .conftest import APP_KEY


def state_of(world, key):
    [(state, instance_id)] = world.sql(
        "SELECT state, instance_id FROM syncd.approval WHERE business_key = %s", str(key)
    )
    return state, instance_id


async def lost_create(world, daemon, days):
    """A create DingTalk carried out but whose answer never came back: ``unknown``."""
    world.sim.faults.update(create_response_lost_rate=1.0)
    key = world.submit_leave(days=days)
    await daemon.drain()
    world.sim.faults.reset()
    assert state_of(world, key) == ("unknown", None)
    return key


def another_systems_instance(world):
    body = {
        "processCode": "PROC-SIM-LEAVE",
        "originatorUserId": "u2",
        "deptId": -1,
        "formComponentValues": [
            {"name": "请假类型", "value": "年假"},
            {"name": '["开始时间","结束时间"]', "value": '["2026-01-10","2026-01-11"]'},
            {"name": "天数", "value": "5"},
            {"name": "请假事由", "value": "by hand"},
        ],
    }
    return world.sim.workflow.create(APP_KEY, body).instance_id


async def test_reconcile_applies_missed_outcomes_and_adopts_lost_creates(world, cli, dingtalk):
    async with world.daemon() as daemon:
        decided = world.submit_leave(days=2)
        await daemon.drain()
        lost = await lost_create(world, daemon, days=2)
    await world.advance(90)  # DingTalk approves both (two approvers); syncd has not heard
    assert state_of(world, decided)[0] == "running"

    code, out, err = await cli("reconcile", "--since", "1h")
    assert code == 0, out + err
    assert f"- leave: instance {state_of(world, decided)[1]} is COMPLETED agree in DingTalk" in out
    assert "was running: applied, now approved" in out
    assert f"(leave {lost} round 1): adopted, now approved" in out
    assert "\r" not in err  # no progress line when stderr is not a terminal
    assert out.rstrip().endswith("consistent")
    for key in (decided, lost):
        assert state_of(world, key)[0] == "approved"
        assert world.sql("SELECT approval_status FROM app.leave_request WHERE id = %s", key) == [
            ("APPROVED",)
        ]
    [(actor,)] = world.sql(
        "SELECT DISTINCT actor FROM syncd.approval_event e JOIN syncd.approval a "
        "ON a.id = e.approval_id WHERE a.business_key = %s AND e.to_state = 'approved'",
        str(decided),
    )
    assert actor.startswith("cli:")
    [(calls,)] = world.sql("SELECT calls FROM syncd.usage WHERE purpose = 'reconcile'")
    assert calls >= 2  # the two lists; the GETs count with their approvals

    code, out, _ = await cli("reconcile", "--since", "1h", "--kind", "leave")
    assert code == 0 and out.rstrip().endswith("consistent") and "- leave" not in out


async def test_reconcile_reports_what_it_cannot_fix(world, cli, dingtalk):
    async with world.daemon() as daemon:
        decided = world.submit_leave(days=2)
        await daemon.drain()
        lost = await lost_create(world, daemon, days=2)
        doubled = await lost_create(world, daemon, days=5)
        # Someone retried by hand in SQL without reconciling: a second instance.
        world.sql(
            "UPDATE syncd.approval SET state = 'pending', "
            "next_attempt_at = now() - interval '1 hour' WHERE business_key = %s",
            str(doubled),
        )
        await daemon.drain()
        gone = world.submit_leave(days=5)
        await daemon.drain()
    del world.sim.workflow.instances[state_of(world, gone)[1]]
    foreign = another_systems_instance(world)
    await world.advance(90)
    [first, second] = [i.instance_id for i in world.sim.instances() if i.instance_id != foreign][
        2:4
    ]
    assert state_of(world, doubled) == ("running", second)

    code, out, _ = await cli("reconcile", "--since", "1h", "--dry-run")
    assert code == 1
    assert "was running: would apply approved" in out
    assert f"(leave {lost} round 1): would adopt it" in out
    assert f"! leave: instance {first} carries the key of approval" in out
    assert f"which owns instance {second}: a duplicate from a lost create" in out
    assert f"- leave: instance {foreign} (by u2, RUNNING) matches no approval" in out
    assert f"holds instance {state_of(world, gone)[1]} as running, but DingTalk" in out
    assert "4 difference(s) left (dry run)" in out
    assert state_of(world, decided)[0] == "running" and state_of(world, lost)[0] == "unknown"

    code, out, _ = await cli("reconcile", "--since", "1h")
    assert code == 1 and "2 difference(s) left" in out
    assert state_of(world, decided)[0] == "approved" and state_of(world, lost)[0] == "approved"
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("KIND"))
    assert header.split() == [
        "KIND", "LISTED", "OURS", "FINISHED", "ADOPTED", "DUPLICATE", "MISSING", "ERROR",
        "FOREIGN", "LEFT", "CALLS",
    ]  # fmt: skip
    assert lines[lines.index(header) + 1].split()[:10] == [
        "leave", "5", "2", "1", "1", "1", "1", "0", "1", "2",
    ]  # fmt: skip

    world.sim.terminate(first)
    code, out, _ = await cli("reconcile", "--since", "1h")
    assert code == 1 and "already TERMINATED, so nothing to do" in out
    assert "1 difference(s) left" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "2x"], "--since '2x': use a number and a unit"),
        (["--since", "0h"], "must be longer than zero"),
        (["--since", "400d"], "at most 365 days back"),
        (["--since", "1h", "--kind", "expense"], "--kind 'expense' is not configured"),
    ],
)
async def test_reconcile_usage_errors_exit_2(cli, argv, message):
    code, _, err = await cli("reconcile", *argv)
    assert code == 2 and message in err


async def test_reconcile_refuses_while_dingtalk_calls_are_paused(world, cli):
    async with world.daemon() as daemon:
        await Pauses(daemon.app.control).quota_exhausted(world.clock.now())
    code, _, err = await cli("reconcile", "--since", "1h")
    assert code == 1 and "DingTalk calls are paused (quota) until " in err
    assert "`syncd resume` first" in err


def test_progress_rewrites_one_line_and_clears_it():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.show("leave: listing")
    progress.show("leave: 1/2")
    progress.close()
    assert stream.getvalue() == "\rleave: listing\rleave: 1/2    \r              \r"
    silent = Progress(None)
    silent.show("nothing")
    silent.close()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("1d12h", 129600), ("45s", 45)],
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2 h", "1.5h", "-2h", "2hours"])
def test_bad_durations_name_the_option_and_the_form(text):
    with pytest.raises(ConfigError, match=r"--since .*use a number and a unit"):
        parse_duration(text)

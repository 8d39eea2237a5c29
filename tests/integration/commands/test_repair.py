"""``syncd retry``, ``syncd cancel`` and ``syncd replay``: guarded, recorded, and the daemon
carries on from there."""

from __future__ import annotations

import pytest

from .conftest import config_data


def approval(world, key, round_=1):
    [row] = world.sql(
        "SELECT id, state, attempts, last_error_code, written_back_at FROM syncd.approval "
        "WHERE kind = 'leave' AND business_key = %s AND round = %s",
        str(key),
        round_,
    )
    return row


async def a_running_approval(world):
    key = world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.drain()
    return key, approval(world, key)[0]


def history(world, approval_id):
    return world.sql(
        "SELECT event_type, from_state, to_state, message, actor FROM syncd.approval_event "
        "WHERE approval_id = %s ORDER BY id",
        approval_id,
    )


async def test_retry_sends_an_invalid_approval_back_and_the_daemon_parks_it_again(world, cli):
    key = world.submit_leave(applicant="left1")
    async with world.daemon() as daemon:
        await daemon.drain()
        approval_id, state, _, error, _ = approval(world, key)
        assert (state, error) == ("invalid", "invalidParameter")

        code, out, _ = await cli("retry", str(approval_id))
        assert code == 0
        assert f"approval {approval_id} (leave {key} round 1): invalid -> pending" in out
        assert "(was invalidParameter: " in out
        assert "parked again by the daemon with the same error" in out
        assert "retried 1, refused 0" in out
        assert approval(world, key)[1:4] == ("pending", 0, None)
        event = history(world, approval_id)[-1]
        assert event[:3] == ("transition", "invalid", "pending")
        assert event[4].startswith("cli:") and "retried by an operator" in event[3]

        await world.advance(5)  # due at the command's wall-clock "now"
        await daemon.drain()
    assert approval(world, key)[1:4] == ("invalid", 1, "invalidParameter")


async def test_retry_refuses_rows_that_are_not_parked(world, cli):
    running, approval_id = await a_running_approval(world)
    code, out, _ = await cli("retry", str(approval_id), "999")
    assert code == 1
    assert (
        f"refused: approval {approval_id} (leave {running} round 1) is running, not invalid or dead"
        in out
    )
    assert "refused: approval 999 does not exist" in out
    assert approval(world, running)[1] == "running"


async def superseded(world):
    """Round 1 parked (DingTalk refuses the applicant), round 2 of the same key running."""
    key = world.submit_leave(applicant="left1")
    async with world.daemon() as daemon:
        await daemon.drain()
        world.app_sql(
            "UPDATE app.leave_request SET status = 'draft', applicant = 'u1' WHERE id = %s", key
        )
        world.app_sql("UPDATE app.leave_request SET status = 'submitted' WHERE id = %s", key)
        await daemon.drain()
    assert approval(world, key, 1)[1] == "invalid" and approval(world, key, 2)[1] == "running"
    return key


async def test_retry_refuses_a_round_replaced_by_a_newer_one(world, cli):
    key = await superseded(world)
    old = approval(world, key, 1)
    code, out, _ = await cli("retry", str(old[0]))
    assert code == 1 and "was replaced by a newer round of the same key" in out
    assert approval(world, key, 1)[1] == "invalid"


async def test_retry_every_dead_approval_of_a_kind(world, cli):
    """A create answered with 5xx is unknown; reconciling finds no instance and, with the
    attempt budget spent, the approval is dead."""
    invalid = world.submit_leave(applicant="left1")
    settings = world.settings(pipeline={"max_attempts": 1})
    async with world.daemon(settings) as daemon:
        await daemon.drain()
        dead = world.submit_leave(days=2)
        world.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
        await daemon.drain()
        await world.advance(11)
        await daemon.drain()
    assert approval(world, dead)[1] == "dead" and approval(world, invalid)[1] == "invalid"

    code, out, _ = await cli("retry", "--kind", "leave", "--all-parked", "--state", "dead")
    assert code == 0 and "dead -> pending" in out and "retried 1, refused 0" in out
    assert "parked again" not in out
    assert approval(world, dead)[1] == "pending" and approval(world, invalid)[1] == "invalid"

    code, out, _ = await cli("retry", "--kind", "leave", "--all-parked", "--state", "dead")
    assert code == 0 and "no dead approvals of kind leave; nothing to retry" in out
    code, out, _ = await cli("retry", "--kind", "leave", "--all-parked")
    assert code == 0 and "invalid -> pending" in out

    world.sim.faults.reset()
    await world.advance(5)
    async with world.daemon() as daemon:
        await daemon.drain()
    assert approval(world, dead)[1] == "running"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give approval ids"),
        (["1", "--kind", "leave", "--all-parked"], "not both"),
        (["--all-parked"], "or --kind KIND --all-parked"),
        (["1", "--state", "dead"], "--state goes with --kind and --all-parked"),
    ],
)
async def test_retry_usage_errors_exit_2(cli, argv, message):
    code, _, err = await cli("retry", *argv)
    assert code == 2 and message in err


async def test_cancel_asks_the_daemon_to_terminate_the_running_instance(world, cli):
    key = world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.drain()
        approval_id = approval(world, key)[0]
        [instance] = world.sim.instances()

        code, out, _ = await cli("cancel", "leave", str(key))
        assert code == 0
        assert f"cancel requested for leave {key} round 1 (approval {approval_id}, running)" in out
        assert f"the daemon terminates instance {instance.instance_id} in DingTalk" in out
        code, out, _ = await cli("cancel", "leave", str(key))
        assert code == 0 and "was already requested at " in out
        notes = [h for h in history(world, approval_id) if h[0] == "note"]
        assert len(notes) == 1 and notes[0][4].startswith("cli:")

        await world.advance(20)  # DingTalk refuses to revoke in the first 15 s
        await daemon.drain()
    assert approval(world, key)[1] == "canceled"
    assert world.sql("SELECT approval_status FROM app.leave_request WHERE id = %s", key) == [
        ("CANCELED",)
    ]
    code, _, err = await cli("cancel", "leave", str(key))
    assert code == 1 and f"no active approval for leave {key}, nothing to cancel" in err
    assert f"`syncd show leave {key}`" in err


async def test_cancel_of_a_request_never_submitted(world, cli):
    key = world.submit_leave(days=5)
    async with world.daemon() as daemon:
        await daemon.app.stages["ingest"].run_once()
        assert approval(world, key)[1] == "pending"
        code, out, _ = await cli("cancel", "leave", str(key))
        assert code == 0 and "never submitted, the daemon drops it" in out
        await world.advance(5)
        await daemon.drain()
    assert approval(world, key)[1] == "canceled" and world.sim.instances() == []
    code, _, err = await cli("cancel", "leave", "nope")
    assert code == 1 and "no active approval for leave nope" in err


async def lost_write_back(world):
    """An approval decided while its business row was gone: finished, not written back."""
    key = world.submit_leave(days=2)
    async with world.daemon() as daemon:
        await daemon.drain()
        world.app_sql("DELETE FROM app.leave_request WHERE id = %s", key)
        await world.advance(120)
        await daemon.drain()
    approval_id, state, _, error, written = approval(world, key)
    assert (state, error, written) == ("approved", "writeback_failed", None)
    return key, approval_id


async def test_replay_writes_back_what_could_not_be_written(world, cli):
    key, approval_id = await lost_write_back(world)
    code, out, _ = await cli("replay", str(approval_id))
    assert code == 1 and "write-back to app.leave_request failed" in out
    assert "the daemon retries it" in out

    world.app_sql(
        "INSERT INTO app.leave_request (id, applicant, leave_type, start_date, end_date, days, "
        "status) VALUES (%s, 'u1', '年假', '2026-01-10', '2026-01-11', 2, 'draft')",
        key,
    )
    code, out, _ = await cli("status")
    assert "leave: 1 finished but not written back" in out
    code, out, _ = await cli("replay", "--kind", "leave", "--unwritten")
    assert code == 0
    assert f"approval {approval_id} (leave {key} round 1), approved: written back to " in out
    assert "replayed 1, refused or failed 0" in out
    [(status, instance)] = world.sql(
        "SELECT approval_status, instance_id FROM app.leave_request WHERE id = %s", key
    )
    assert status == "APPROVED" and instance
    assert approval(world, key)[4] is not None
    notes = [
        h[3] for h in history(world, approval_id) if h[0] == "note" and h[4].startswith("cli:")
    ]
    assert notes[-2:] == ["write-back replayed by an operator", "written back to app.leave_request"]

    code, out, _ = await cli("replay", "--kind", "leave", "--unwritten")
    assert code == 0 and "nothing to replay" in out
    code, out, _ = await cli("replay", str(approval_id))
    assert code == 1 and "was already written back at " in out and "--force writes it again" in out

    world.app_sql("UPDATE app.leave_request SET approval_status = NULL WHERE id = %s", key)
    code, out, _ = await cli("replay", str(approval_id), "--force")
    assert code == 0 and "approved: written back again to app.leave_request" in out
    assert world.sql("SELECT approval_status FROM app.leave_request WHERE id = %s", key) == [
        ("APPROVED",)
    ]
    assert "(already written at " in history(world, approval_id)[-2][3]


async def test_replay_refuses_what_it_cannot_write(world, cli):
    running, approval_id = await a_running_approval(world)
    code, out, _ = await cli("replay", str(approval_id), "424242")
    assert code == 1
    assert (
        f"refused: approval {approval_id} (leave {running} round 1) is running, not approved" in out
    )
    assert "refused: approval 424242 does not exist" in out

    cli.configure(config_data(world.daemon_dsn) | {"kinds": {}})
    code, out, _ = await cli("replay", str(approval_id))
    assert code == 1 and "kind 'leave' is not in the configuration (is --config right?)" in out


async def test_replay_usage_error_exits_2(cli):
    code, _, err = await cli("replay")
    assert code == 2 and "give approval ids" in err and "--kind KIND --unwritten" in err


@pytest.mark.parametrize("action", ["cancel", "comment"])
async def test_retry_refuses_the_record_of_a_cancel_or_comment_for_a_key_never_submitted(
    world, cli, action
):
    payload = '{"text": "a note"}' if action == "comment" else "{}"
    world.sql(
        "INSERT INTO syncd.outbox (kind, business_key, action, payload) "
        "VALUES ('leave', 'never-sent', %s, %s)",
        action,
        payload,
    )
    async with world.daemon() as daemon:
        await daemon.drain()
    [(approval_id, state, code_)] = world.sql(
        "SELECT id, state, last_error_code FROM syncd.approval WHERE business_key = 'never-sent'"
    )
    assert (state, code_) == ("invalid", f"nothing_to_{action}")

    code, out, _ = await cli("retry", str(approval_id))
    assert code == 1
    assert f"records a {action} for a key never submitted, not a request" in out
    assert f"syncd dismiss {approval_id}" in out
    assert approval(world, "never-sent")[1] == "invalid"  # not sent back to pending
    code, _, _ = await cli("retry", "--kind", "leave", "--all-parked")
    assert approval(world, "never-sent")[1] == "invalid"


async def test_retry_refuses_an_inbound_import_that_was_refused(world, cli):
    [(approval_id,)] = world.sql(
        "INSERT INTO syncd.approval (kind, business_key, state, instance_id, "
        "last_error_code, last_error_message) VALUES ('leave', 'pi-1', 'invalid', 'pi-1', "
        "'inbound_refused', 'instance pi-1 (leave): component ''天数'' ...') RETURNING id"
    )
    code, out, _ = await cli("retry", str(approval_id))
    assert code == 1
    assert "instance started in DingTalk whose business row was refused" in out
    assert world.sql("SELECT state FROM syncd.approval") == [("invalid",)]

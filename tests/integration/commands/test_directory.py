"""``syncd directory status|sync``: the command line, the simulator on loopback HTTP, the
daemon's role; and ``syncd status`` showing the contact calls apart from the quota."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from syncd.commands.directory import Progress
from syncd.ports.directory import SyncRun

from .conftest import config_data


async def test_status_before_and_after_a_sync_and_its_check(world, cli, dingtalk):
    code, out, _ = await cli("directory", "status")
    assert code == 0, out
    assert "directory: not enabled" in out and "last sync: none" in out
    assert "the directory was never synced" in out
    code, _, _ = await cli("directory", "status", "--check")
    assert code == 1

    code, out, err = await cli("directory", "sync")
    assert code == 0, out + err
    assert out.startswith("directory sync #1 done in ")
    present = [u for u in world.sim.world.users if u.active]
    assert f"{len(present)} users" in out
    assert "directory_sync_progress" in err or "directory sync progress" in err  # a log line

    code, out, _ = await cli("directory", "status", "--check")
    assert code == 0, out
    assert "last sync: #1 done (command)" in out
    assert f"users: {len(present)} present, 0 departed" in out
    assert "nothing needs attention" in out
    code, out, _ = await cli("directory", "status", "--json")
    report = json.loads(out)
    assert report["last"]["users"] == len(present) and report["running"] is None
    assert report["users"] == {"present": len(present), "departed": 0}
    assert report["departments"] == len(world.sim.world.departments)

    code, out, _ = await cli("status")
    assert code == 0
    calls = report["last"]["calls"]
    assert ": 0 of 5000 (0.0%)" in out  # contact calls are exempt from the quota
    assert f"not counted against the quota (contact calls): directory {calls}" in out

    world.sql("UPDATE syncd.directory_sync SET finished_at = finished_at - interval '3 days'")
    cli.configure(config_data(world.daemon_dsn, dingtalk=dingtalk, directory={"enabled": True}))
    code, out, _ = await cli("directory", "status", "--check")
    assert code == 1
    assert "directory: enabled, a full sync every 1d" in out
    assert "finished more than twice directory.resync_interval ago" in out


async def test_sync_resumes_a_sync_that_stopped_on_an_error(world, cli, dingtalk):
    world.sim.faults.update(error_5xx_rate=1.0, endpoints=["oapi.user.list"])
    code, out, _ = await cli("directory", "sync")
    assert code == 1
    assert "stopped on an error" in out and "it is resumable" in out
    code, out, _ = await cli("directory", "status")
    assert "running sync: #1 running (command)" in out and "last error:" in out
    world.sim.faults.reset()
    code, out, err = await cli("directory", "sync")  # no wait for the retry time
    assert code == 0, out + err
    assert out.startswith("directory sync #1 done")


async def test_bad_directory_settings_exit_2_naming_the_key(world, cli):
    cli.configure(config_data(world.daemon_dsn, directory={"resync_interval": "soon"}))
    code, _, err = await cli("directory", "status")
    assert code == 2
    assert "directory.resync_interval" in err and "30m, 24h, 90d" in err
    cli.configure(config_data(world.daemon_dsn, directory={"page_size": 500}))
    code, _, err = await cli("directory", "status")
    assert code == 2 and "directory.page_size" in err


def test_the_progress_line_on_a_terminal():
    terminal = io.StringIO()
    progress = Progress(terminal)
    run = SyncRun(
        id=4,
        trigger="command",
        state="running",
        started_at=datetime(2026, 3, 2, tzinfo=UTC),
        queue=(10, 20),
        departments=5,
        users=240,
        calls=9,
    )
    progress.show(run)
    assert "sync #4: departments 3 done, 2 queued · users 240 · " in terminal.getvalue()
    assert "users/s · calls 9" in terminal.getvalue()
    progress.follow(run)
    assert "following nobody (waiting to retry)" in terminal.getvalue()
    progress.close()
    assert terminal.getvalue().endswith("\r")

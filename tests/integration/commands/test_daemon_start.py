"""Only ``syncd run`` starts the daemon: ``check`` and ``reconcile`` open syncd's parts
(an App) to use them, and log no ``daemon_start``."""

from __future__ import annotations

import pytest

from .conftest import LEAVE_KIND, config_data

DAEMON_START = '"action": "daemon_start"'


@pytest.mark.parametrize(
    ("argv", "starts"),
    [(["check"], False), (["reconcile", "--since", "1h"], False), (["run", "--once"], True)],
)
async def test_only_run_logs_the_daemon_start(cli, dingtalk, argv, starts):
    code, out, err = await cli("--log-format", "json", *argv)
    assert code == 0, out + err
    assert (DAEMON_START in err) is starts, err


async def test_check_says_what_fits(cli, dingtalk):
    code, out, err = await cli("check")
    assert code == 0, out + err
    assert out.splitlines() == [
        "database: schema current, write-back targets fit",
        f"kind leave: form mapping fits template {LEAVE_KIND['process_code']}",
    ]


async def test_check_names_a_template_dingtalk_does_not_have(world, cli, dingtalk):
    kind = {**LEAVE_KIND, "process_code": "PROC-NOPE"}
    cli.configure(config_data(world.daemon_dsn, kinds={"leave": kind}, dingtalk=dingtalk))
    code, _, err = await cli("check")
    assert code == 2
    assert "[kinds.leave] process_code 'PROC-NOPE'" in err

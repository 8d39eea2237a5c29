"""``syncd demo --business-db mariadb``: the legacy app's tables in a MariaDB the demo
starts, syncd's state in its PostgreSQL; and what it says when no server binary is there.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from syncd.demo.mariadb import MariaDBBusiness
from syncd.demo.runner import DemoOptions, run_demo
from syncd.simulator import Simulator
from tests.acceptance.test_demo import (
    ROOT,
    _assert_nothing_left,
    _demo,
    _summary,
    _wait_for,
    run_dir,  # noqa: F401  (fixture)
)

#: The demo's status_map applied to DingTalk's record.
STATUS = {("COMPLETED", "agree"): "APPROVED", ("COMPLETED", "refuse"): "REJECTED"}


async def _compare(sim: Simulator, business: MariaDBBusiness | None) -> dict[str, Any]:
    """Every business row in MariaDB against the simulator's record of its instance."""
    assert business is not None
    by_key = {  # the correlation field the demo's kinds fill
        field["value"]: i
        for i in sim.workflow.instances.values()
        for field in i.form
        if field["name"] == "业务编号"
    }
    seen: dict[str, Any] = {"rows": 0, "final": 0}
    for kind, table, value, column in (
        ("leave", "leave_request", "天数", "days"),
        ("expense", "expense_claim", "金额（元）", "amount"),
    ):
        for row in await business.rows(table):
            seen["rows"] += 1
            instance = by_key[f"syncd:{kind}/{row['id']}/1"]
            form = {item["name"]: item["value"] for item in instance.form}
            assert float(form[value]) == float(row[column])
            if table == "expense_claim":
                assert "项目" in form["明细"], form  # the JSON column reached the form's table
            if instance.status == "RUNNING":  # waits for a person: nothing written yet
                assert (row["approval_status"], row["instance_id"], row["decided_at"]) == (
                    None,
                    None,
                    None,
                )
                continue
            seen["final"] += 1
            assert row["instance_id"] == instance.instance_id
            assert row["approval_status"] == STATUS[instance.status, instance.result]
            assert instance.finish_time is not None
            finish = instance.finish_time.astimezone(UTC).replace(tzinfo=None)
            assert abs((row["decided_at"] - finish).total_seconds()) < 0.001
    return seen


@pytest.mark.timeout(60)
async def test_the_demo_on_mariadb_writes_dingtalks_record_into_the_business_rows():
    seen: dict[str, Any] = {}

    async def inspect(sim: Simulator, business: MariaDBBusiness | None, _dsn: str) -> None:
        seen.update(await _compare(sim, business))

    out = io.StringIO()
    options = DemoOptions(requests=12, rate=20, time_scale=0.5, business_db="mariadb")
    snapshot = await run_demo(options, asyncio.Event(), out, inspect=inspect)
    text = out.getvalue()
    assert "MariaDB started, the application's tables in mysql://" in text
    assert "business db     MariaDB  mysql://syncd_admin:***@127.0.0.1:" in text
    counts = _summary(text)
    assert counts["requests"] == 12 and counts["parked"] == 0
    assert seen["rows"] == 12
    assert seen["final"] == counts["approved"] + counts["rejected"] >= 9
    assert snapshot.unconsumed == 0


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_mariadb_demo_and_leaves_nothing_behind(run_dir):  # noqa: F811
    process, out, err = _demo(run_dir, "--business-db", "mariadb", "--requests", "1000")
    _wait_for(err, "action=demo_request", process, seconds=40)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0, err.read_text()[-3000:]
    stdout = out.read_text()
    counts = _summary(stdout)
    assert 0 < counts["requests"] < 1000 and counts["parked"] == 0
    assert "Trigger does not exist" not in err.read_text()
    assert "MariaDB started" in stdout
    _assert_nothing_left(run_dir, stdout)  # MariaDB's directory was in the same TMPDIR


def test_without_a_server_binary_the_demo_says_what_to_install(tmp_path: Path):
    # no PATH, and none of the folders searched besides it
    code = (
        "import sys, syncd.embedded_mysql as m; m._SEARCH = (); from syncd.cli import main; "
        "sys.exit(main(['demo', '--no-ui', '--business-db', 'mariadb']))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "PATH": str(tmp_path), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "sudo apt-get install mariadb-server" in done.stderr
    assert "brew install mariadb" in done.stderr
    assert "SYNCD_DEMO_MYSQL_DSN=mysql://" in done.stderr
    assert "PostgreSQL started" not in done.stdout
    assert list(tmp_path.iterdir()) == []  # nothing was started

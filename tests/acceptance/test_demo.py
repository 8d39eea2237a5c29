"""``syncd demo`` as a user runs it: a real process, to its natural end or to a signal.

Each run gets its own TMPDIR, so "nothing left behind" means: the process exited 0, the
directory is empty, and no process runs in (or names) the demo's data directory.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from syncd.demo.inbound import STARTS
from syncd.demo.runner import DemoOptions, run_demo
from syncd.demo.world import LEAVE_IN
from syncd.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
COUNTS = re.compile(r"^\s+(requests|approved|rejected|canceled|pending|parked)\s+(\d+)", re.M)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory in the system's temp area (pytest's own is private to root, and
    PostgreSQL runs as an unprivileged user when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="syncd-demo-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    temp = tmp_path / "tmp"
    temp.mkdir()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "demo", "--no-ui", *args],
        cwd=ROOT,
        env={**env, "TMPDIR": str(temp)},
        stdin=subprocess.DEVNULL,
        stdout=out.open("w"),
        stderr=err.open("w"),
        text=True,
    )
    return process, out, err


def _wait_for(path: Path, text: str, process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text():
        assert process.poll() is None, f"demo exited early:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} after {seconds} s:\n{path.read_text()}"
        time.sleep(0.1)


def _summary(stdout: str) -> dict[str, int]:
    assert "syncd demo summary" in stdout, stdout
    return {name: int(value) for name, value in COUNTS.findall(stdout)}


def _processes_in(directory: Path) -> list[str]:
    """Processes whose command line or working directory is inside ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(directory) in cmdline or cwd.startswith(str(directory)):
            found.append(f"{proc.name}: {cmdline}")
    return found


def _assert_nothing_left(tmp_path: Path, stdout: str) -> None:
    data = Path(re.search(r"data in (\S+)", stdout)[1])  # type: ignore[index]
    assert data.is_relative_to(tmp_path / "tmp")
    assert not data.exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert _processes_in(tmp_path) == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_runs_to_its_end_and_leaves_nothing_behind(run_dir):
    process, out, err = _demo(run_dir, "--requests", "20")
    assert process.wait(timeout=100) == 0, err.read_text()[-3000:]
    stdout = out.read_text()
    counts = _summary(stdout)
    assert counts["requests"] == 20
    assert counts["parked"] == 0
    assert counts["approved"] >= 10 and counts["rejected"] >= 2
    assert sum(counts[s] for s in ("approved", "rejected", "canceled", "pending")) == 20
    # the run ends when the rules are done: what remains waits for a person
    waiting = re.search(r"pending\s+(\d+)\s+\((\d+) waiting for a person\)", stdout)
    assert waiting and waiting[1] == waiting[2]
    assert re.search(r"outbox → DingTalk instance\s+p50 \d+\.\d\d s\s+p95 \d+\.\d\d s", stdout)
    assert re.search(r"decision → written back\s+p50 \d+\.\d\d s", stdout)
    assert re.search(r"DingTalk calls per approval\s+\d+\.\d", stdout)
    assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+/metrics", stdout)
    assert re.search(r"simulator page\s+http://127\.0\.0\.1:\d+/_sim/", stdout)
    assert "action=writeback_done" in err.read_text()
    _assert_nothing_left(run_dir, stdout)


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_everything_and_prints_the_summary(run_dir, sig):
    process, out, err = _demo(run_dir, "--requests", "1000", "--rate", "5")
    # the legacy app's first leave (not one started in DingTalk, keyed by its instance id)
    _wait_for(err, "kind=leave business_key=1 state=approved", process, seconds=60)
    process.send_signal(sig)
    assert process.wait(timeout=30) == 0, err.read_text()[-3000:]
    stdout = out.read_text()
    counts = _summary(stdout)
    assert 0 < counts["requests"] < 1000
    assert counts["approved"] >= 1 and counts["parked"] == 0
    _assert_nothing_left(run_dir, stdout)


#: The demo's status_map applied to DingTalk's record.
STATUS = {("COMPLETED", "agree"): "APPROVED", ("COMPLETED", "refuse"): "REJECTED"}


async def _receipts(sim: Simulator, conn: psycopg.AsyncConnection[dict[str, Any]]) -> int:
    """Each expense claim's receipt against the file its instance names; how many."""
    by_key = {
        field["value"]: i
        for i in sim.workflow.instances.values()
        for field in i.form
        if field["name"] == "业务编号"
    }
    cursor = await conn.execute("SELECT id, receipt, receipt_name FROM app.expense_claim")
    claims = await cursor.fetchall()
    for claim in claims:
        instance = by_key[f"syncd:expense/{claim['id']}/1"]
        form = {item["name"]: item["value"] for item in instance.form}
        (attached,) = json.loads(form["附件"])  # the DDAttachment names the receipt
        assert attached["fileName"] == claim["receipt_name"]
        stored = sim.storage.files[attached["fileId"]]
        assert stored.data == bytes(claim["receipt"]) and stored.data.startswith(b"\x89PNG")
        assert stored.creator == instance.originator  # uploaded as the applicant
        assert stored.space_id == sim.storage.approval_space
    return len(claims)


async def _imported(sim: Simulator, conn: psycopg.AsyncConnection[dict[str, Any]]) -> int:
    """Each leave started in DingTalk against its one row; how many."""
    cursor = await conn.execute("SELECT * FROM app.leave_from_dingtalk")
    rows = {row["instance_id"]: row for row in await cursor.fetchall()}
    started = sim.instances(LEAVE_IN)
    assert sorted(rows) == sorted(i.instance_id for i in started)  # exactly one row each
    for instance in started:
        row, form = rows[instance.instance_id], {f["name"]: f["value"] for f in instance.form}
        assert row["applicant"] == instance.originator
        assert row["serial"] == instance.business_id
        assert row["leave_type"] == form["请假类型"]
        assert row["period"] == json.loads(form['["开始时间","结束时间"]'])
        assert row["days"] == Decimal(form["天数"])
        assert row["reason"] == form["请假事由"]
        # GET's createTime is to the minute (contract §4.1)
        assert row["started_at"] == instance.create_time.replace(second=0, microsecond=0)
        assert instance.status == "COMPLETED"  # the demo's starts are decided by the rules
        assert row["approval_status"] == STATUS[instance.status, instance.result]
        assert instance.finish_time is not None
        assert abs((row["decided_at"] - instance.finish_time).total_seconds()) < 0.001
    return len(started)


@pytest.mark.timeout(60)
async def test_the_demo_attaches_receipts_and_imports_leave_started_in_dingtalk():
    seen: dict[str, int] = {}

    async def inspect(sim: Simulator, business: object, dsn: str) -> None:
        assert business is None
        async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            seen["receipts"] = await _receipts(sim, conn)
            seen["imported"] = await _imported(sim, conn)

    out = io.StringIO()
    options = DemoOptions(requests=6, rate=20, time_scale=0.5)
    snapshot = await run_demo(options, asyncio.Event(), out, inspect=inspect)
    counts = _summary(out.getvalue())
    assert counts["requests"] == 6 and counts["parked"] == 0
    assert seen == {"receipts": 3, "imported": len(STARTS)}
    assert snapshot.started_in_dingtalk == snapshot.inbound_imported == len(STARTS)
    assert f"from DingTalk     {len(STARTS)}   (of {len(STARTS)} started;" in out.getvalue()

"""kill -9 while a daemon uploads attachments, with a restart after each: one instance per
row, every instance naming exactly its row's files, each file committed once per round.

Twenty expense claims, each with one to three files (base64 in the payload or a path
under ``base_dir``), are submitted by a real ``syncd run`` process. The simulator slows
the upload chain (ticket, PUT, commit) and the proxy every database packet, so the
kills, drawn at random moments, land between the calls of an upload and between a
storage commit and syncd's record of it. A commit whose answer a kill lost cannot be
told apart from one never made, but the upload was noted as begun (syncd.upload_intent):
the next attempt asks DingTalk for the file under that name and adopts it. So the space
holds exactly one copy of each file, under its own name, and the instance names it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from .conftest import FaultEnv
from .harness import APPLICANTS, Fleet, Proxy, Report, query, rng, syncd_command, timed

PROCESS = "PROC-SIM-EXPENSE"
ROWS = 20
EXTRA = """
[directory]
enabled = true
[attachments]
base_dir = "{base}"
[kinds.expense]
process_code = "{process}"
originator = "applicant"
[kinds.expense.form]
"金额（元）" = "amount"
"费用类型" = "category"
"发生日期" = "spent_on"
[kinds.expense.attachments."附件"]
field = "receipts"
"""
UPLOAD_CALLS = ["storage.uploadInfo", "oss.put", "storage.commit"]

Files = dict[str, list[tuple[str, bytes]]]


async def insert_claims(env: FaultEnv, base: Path, draw: Any) -> Files:
    """``ROWS`` claims with 1–3 drawn files each, half inline, half by path."""
    files: Files = {}
    rows = []
    for n in range(ROWS):
        key = f"claim{n:02d}"
        receipts = []
        files[key] = []
        for i in range(draw.randint(1, 3)):
            name = f"{key} 收据 {i}.{draw.choice(['pdf', 'png', 'txt'])}"
            data = draw.randbytes(draw.randint(0, 2000))
            files[key].append((name, data))
            if draw.random() < 0.5:
                receipts.append({"name": name, "content_base64": base64.b64encode(data).decode()})
            else:
                (base / name).write_bytes(data)
                receipts.append({"name": name, "path": name})
        payload = {
            "applicant": APPLICANTS[n % 6],  # the people of the default world
            "amount": "500",
            "category": "差旅",
            "spent_on": "2026-01-02",
            "receipts": receipts,
        }
        rows.append(("expense", key, Jsonb(payload)))
    await query(  # one statement: every row is there before the first submit
        env.app_dsn,
        "INSERT INTO syncd.outbox (kind, business_key, payload) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[])",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )
    return files


async def uploading(env: FaultEnv, files: Files, since: float) -> bool:
    """Whether a round the running daemon claimed (at ``since`` or later, a wall-clock
    time) still has files to upload."""
    rows = await query(
        env.admin_dsn,
        "SELECT a.business_key, (SELECT count(*) FROM syncd.attachment t "
        "                         WHERE t.approval_id = a.id) "
        "  FROM syncd.approval a WHERE a.state = 'submitting' "
        "   AND a.lease_expires_at >= to_timestamp(%s) + interval '11 s'",
        (since,),
    )
    return any(done < len(files[key]) for key, done in rows)


async def wait_submitted(env: FaultEnv, within: float) -> None:
    """Every row consumed into an approval with an instance (nothing left to submit)."""
    seen: list[tuple[Any, ...]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                seen = await query(
                    env.admin_dsn,
                    "SELECT (SELECT count(*) FROM syncd.outbox WHERE consumed_at IS NULL), "
                    "       count(*), count(instance_id), "
                    "       count(*) FILTER (WHERE state IN ('invalid', 'dead'))"
                    "  FROM syncd.approval",
                )
                if seen[0] == (0, ROWS, ROWS, 0):
                    return
                if seen[0][3]:
                    parked = await query(
                        env.admin_dsn,
                        "SELECT business_key, last_error_code, last_error_message "
                        "  FROM syncd.approval WHERE state IN ('invalid', 'dead')",
                    )
                    raise AssertionError(f"rows parked: {parked[:3]}")
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(
            f"not submitted in {within} s (open, rows, ids, parked): {seen}"
        ) from None


def copies(name: str, stored: list[str]) -> int:
    """How many files of the space are ``name`` or an AUTO_RENAME of it (``x(1).pdf``)."""
    stem, _, ext = name.rpartition(".")
    renamed = re.compile(re.escape(stem) + r"\(\d+\)\." + re.escape(ext))
    return sum(1 for s in stored if s == name or renamed.fullmatch(s))


async def check_uploads(env: FaultEnv, files: Files, report: Report) -> None:
    approvals = {
        key: (state, instance_id)
        for key, state, instance_id in await query(
            env.admin_dsn, "SELECT business_key, state, instance_id FROM syncd.approval"
        )
    }
    assert sorted(approvals) == sorted(files)
    instances = env.sim.instances(process_code=PROCESS)
    assert sorted(i.instance_id for i in instances) == sorted(i for _, i in approvals.values())
    stored = [f.name for f in env.sim.storage.files.values()]
    for key, (_, instance_id) in approvals.items():
        instance = env.sim.instance(instance_id)
        [value] = [json.loads(c["value"]) for c in instance.form if c["name"] == "附件"]
        named = [(item["fileName"], int(item["fileSize"])) for item in value]
        assert named == [(name, len(data)) for name, data in files[key]], key
        held = [env.sim.storage.files[item["fileId"]].data for item in value]
        assert held == [data for _, data in files[key]], key
        for name, _ in files[key]:
            assert copies(name, stored) == 1, (name, stored)
    recorded = await query(
        env.admin_dsn,
        "SELECT approval_id, component, file_index, count(*) FROM syncd.attachment "
        " GROUP BY 1, 2, 3 HAVING count(*) > 1",
    )
    assert recorded == []
    report.instances = len(instances)
    report.faults["files"] = sum(len(f) for f in files.values())
    report.faults["commits"] = len(stored)
    report.faults["calls"] = {c: env.sim.calls[c] for c in UPLOAD_CALLS}
    [(begun,)] = await query(env.admin_dsn, "SELECT count(*) FROM syncd.upload_intent")
    assert begun == 0  # every upload begun was recorded


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill_9_while_uploading_commits_each_file_once(
    fault_env: FaultEnv, tmp_path: Path
) -> None:
    env = fault_env
    report = Report("kill -9 while uploading attachments, restart after each")
    draw = rng()
    wanted = 4
    env.sim.faults.update(
        latency={"distribution": "uniform", "mean_ms": 250, "spread_ms": 150},
        endpoints=UPLOAD_CALLS,
    )
    base = tmp_path / "files"
    base.mkdir()
    async with Proxy("127.0.0.1", env.pg.port) as proxy:
        proxy.delay = 0.002
        fleet = env.fleet(proxy.dsn(env.dsn), lease=11.0)
        config = fleet.config.read_text(encoding="utf-8")
        config = config.replace("[dingtalk]\n", "[dingtalk]\nagent_id = 3000001\n", 1)
        # Small batches: a killed daemon's leases hold a few rows, not all of them.
        config = config.replace("batch_size = 25", "batch_size = 3")
        config = config.replace("concurrency = 8", "concurrency = 3")
        fleet.config.write_text(config + EXTRA.format(base=base, process=PROCESS), "utf-8")
        async with timed(report):
            await sync_directory(fleet)
            await fleet.start("a")
            files = await insert_claims(env, base, draw)
            await kill_while_uploading(env, fleet, files, report, draw, wanted)
            killed = time.monotonic()
            await wait_submitted(env, 50)
            report.faults["after_last_kill_s"] = round(time.monotonic() - killed, 1)
            assert await fleet.stop("a") == 0
    report.kills = fleet.kills
    report.approvals = ROWS
    report.faults.update(upload_latency_ms="100-400", db_packet_delay_ms=2)
    await check_uploads(env, files, report)
    report.invariants = "hold"
    report.emit()
    assert report.kills == wanted
    assert report.kills_submitting >= 1, "no kill landed while a file was being uploaded"


async def sync_directory(fleet: Fleet) -> None:
    """``syncd directory sync``, as an operator runs it first: uploads need unionIds."""
    sync = await asyncio.create_subprocess_exec(
        syncd_command(),
        "--config",
        str(fleet.config),
        "directory",
        "sync",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await sync.communicate()
    assert sync.returncode == 0, err.decode(errors="replace")[-2000:]


async def kill_while_uploading(
    env: FaultEnv, fleet: Fleet, files: Files, report: Report, draw: Any, wanted: int
) -> None:
    """``wanted`` kills at drawn moments while uploads are under way, each followed by a
    restart; ``kills_submitting`` counts those that landed with a round mid-upload."""
    deadline = time.monotonic() + 30
    while fleet.kills < wanted and time.monotonic() < deadline:
        since = time.time()
        await asyncio.sleep(draw.uniform(0.3, 1.5))
        mid = await uploading(env, files, since - 1)
        await fleet.kill("a")
        report.kills_submitting += mid
        await fleet.start("a")

"""`syncd run` as a real process against PostgreSQL and the simulator over loopback.

The daemon logs in as ``syncd_daemon``; the application's own role owns the leave table,
captures it and submits the requests (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import psycopg
import pytest

from syncd.db import capture
from syncd.db.connect import connect
from syncd.simulator import Simulator, World, serve
from tests.roles import write_back_grants

LEAVE_TABLE = """
CREATE SCHEMA app;
CREATE TABLE app.leave_request (
    id serial PRIMARY KEY, applicant text NOT NULL, leave_type text NOT NULL DEFAULT '年假',
    start_date date NOT NULL DEFAULT '2026-01-10', end_date date NOT NULL DEFAULT '2026-01-11',
    days numeric NOT NULL, status text NOT NULL DEFAULT 'draft', approval_status text
);
"""

CONFIG = """
[database]
dsn = "{dsn}"
[dingtalk]
app_key = "dingsimappkey0001"
app_secret = "sim-app-secret-0001"
api_url = "{sim}"
oapi_url = "{sim}"
[events]
stream = {stream}
[http]
port = 0
[kinds.leave]
process_code = "PROC-SIM-LEAVE"
originator = "applicant"
correlation_field = "业务编号"
[kinds.leave.form]
"请假类型" = "leave_type"
'["开始时间","结束时间"]' = {{ fields = ["start_date", "end_date"] }}
"天数" = "days"
[kinds.leave.write_back]
table = "app.leave_request"
key_column = "id"
columns = {{ approval_status = "status" }}
"""
WRITE_BACK = {"table": "app.leave_request", "key_column": "id", "columns": ["approval_status"]}


async def prepare(app_dsn: str) -> None:
    """The application's table, the daemon's write-back grants and the capture, made by
    the application's role."""
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        conn.execute(LEAVE_TABLE)
        conn.execute(write_back_grants({"leave": {"write_back": WRITE_BACK}}))
    async with connect(app_dsn) as conn:
        spec = capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.status = 'submitted'")
        await capture.install(conn, spec)


async def wait_for_results(dsn: str, count: int, deadline: float) -> None:
    """Wait for ``count`` NOTIFY syncd_result, i.e. write-backs committed."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("LISTEN syncd_result")
        seen = 0
        async with asyncio.timeout(deadline):
            async for _ in conn.notifies():
                seen += 1
                if seen >= count:
                    return


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_run_until_sigterm_with_stream_events(database, daemon_dsn, application, tmp_path):
    await prepare(application.dsn)
    sim = Simulator(World.default(), time_scale=0.01)
    async with serve(sim) as server:
        config = tmp_path / "syncd.toml"
        config.write_text(CONFIG.format(dsn=daemon_dsn, sim=server.base_url, stream="true"))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "--config",
            str(config),
            "--log-format",
            "json",
            "run",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SYNCD_LOG__LEVEL": "INFO"},
        )
        try:
            results = asyncio.create_task(wait_for_results(database, 3, 40))
            with psycopg.connect(application.dsn, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO app.leave_request (applicant, days, status) "
                    "VALUES ('u1', 1, 'submitted'), ('u2', 2, 'submitted'), ('u3', 3, 'submitted')"
                )
            await results
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT approval_status FROM app.leave_request").fetchall()
        channels = conn.execute("SELECT DISTINCT channel FROM syncd.inbox").fetchall()
    assert rows == [("approved",)] * 3
    assert channels == [("stream",)]
    log = stderr.decode()
    assert '"action": "daemon_stop"' in log and "sim-app-secret-0001" not in log


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_run_once_drains_and_prints_a_summary(daemon_dsn, application, tmp_path):
    await prepare(application.dsn)
    sim = Simulator(World.default(), time_scale=0.01)
    async with serve(sim) as server:
        config = tmp_path / "syncd.toml"
        config.write_text(CONFIG.format(dsn=daemon_dsn, sim=server.base_url, stream="false"))
        with psycopg.connect(application.dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO app.leave_request (applicant, days, status) "
                "VALUES ('u1', 1, 'submitted')"
            )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "--config",
            str(config),
            "run",
            "--once",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(40):
            stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert '"submit": 1' in stdout.decode() and '"ingest": 1' in stdout.decode()
    assert len(sim.instances()) == 1

"""The baseline: the same job done with Procrastinate, a generic PostgreSQL job queue.

What a team would write without syncd: one job per business row; the task creates the
DingTalk instance over HTTP, reads it until it is decided, and writes the outcome into
the business row. Same simulator, same rules, same PostgreSQL, same concurrency (8
tasks in flight), the same token reuse. It does less than syncd (no history, no event
inbox, no guard against double creates, no pacing), which favours it.

``python -m bench.baseline worker --dsn DSN --sim URL --concurrency 8`` runs a worker
until the queue is empty; :func:`prepare` and :func:`enqueue` set up the schema, the
business table and the jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import httpx
import procrastinate
import psycopg
from psycopg_pool import AsyncConnectionPool

from bench.harness import APP_KEY, APP_SECRET

TABLE = """
CREATE TABLE app.leave_baseline (LIKE app.leave_request INCLUDING ALL);
"""

FINAL = {"COMPLETED", "TERMINATED"}
STATUS = {"agree": "APPROVED", "refuse": "REJECTED"}
MAX_READS = 200


def build_app(dsn: str) -> procrastinate.App:
    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))


class Job:
    """Shared HTTP client, token and business-table pool of one worker."""

    def __init__(self, sim: str, pool: AsyncConnectionPool[Any]) -> None:
        self.http = httpx.AsyncClient(base_url=sim, timeout=10)
        self.pool = pool
        self.token = ""
        self.token_expires = 0.0
        self.lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        async with self.lock:
            if time.monotonic() > self.token_expires:
                body = {"appKey": APP_KEY, "appSecret": APP_SECRET}
                reply = (await self.http.post("/v1.0/oauth2/accessToken", json=body)).json()
                self.token = reply["accessToken"]
                self.token_expires = time.monotonic() + int(reply["expireIn"]) - 600
        return {"x-acs-dingtalk-access-token": self.token}

    async def run(self, row_id: int) -> None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT applicant, leave_type, start_date, end_date, days, reason "
                "FROM app.leave_baseline WHERE id = %s",
                (row_id,),
            )
            row = await cursor.fetchone()
        assert row is not None
        applicant, leave_type, start, end, days, reason = row
        form = [
            {"name": "请假类型", "value": leave_type},
            {"name": '["开始时间","结束时间"]', "value": f'["{start}","{end}"]'},
            {"name": "天数", "value": str(days)},
            {"name": "请假事由", "value": reason or ""},
            {"name": "业务编号", "value": f"baseline:{row_id}"},
        ]
        body = {
            "processCode": "PROC-SIM-LEAVE",
            "originatorUserId": applicant,
            "deptId": -1,
            "formComponentValues": form,
        }
        headers = await self.headers()
        reply = await self.http.post("/v1.0/workflow/processInstances", json=body, headers=headers)
        reply.raise_for_status()
        instance_id = reply.json()["instanceId"]
        result: dict[str, Any] = {}
        for _ in range(MAX_READS):
            reply = await self.http.get(
                "/v1.0/workflow/processInstances",
                params={"processInstanceId": instance_id},
                headers=headers,
            )
            reply.raise_for_status()
            result = reply.json()["result"]
            if result["status"] in FINAL:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"instance {instance_id} not decided")
        status = STATUS.get(result.get("result", ""), "CANCELED")
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE app.leave_baseline SET approval_status = %s, instance_id = %s, "
                "decided_at = now() WHERE id = %s",
                (status, instance_id, row_id),
            )


async def prepare(dsn: str) -> None:
    """Procrastinate's schema and the baseline's business table."""
    app = build_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE)


async def enqueue(dsn: str, count: int) -> None:
    """``count`` business rows, each with its job (deferred in batches of 1,000); rows
    already decided (a history) get none."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO app.leave_baseline (applicant, days, reason, status) "
            "SELECT 'u' || (1 + g %% 6), 2, 'rest ' || g, 'submitted' "
            "FROM generate_series(1, %s) g",
            (count,),
        )
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM app.leave_baseline WHERE status = 'submitted' ORDER BY id"
            )
        ]
    app = build_app(dsn)
    task = app.task(name="approve")(_noop)
    async with app.open_async():
        for start in range(0, len(ids), 1000):
            await task.batch_defer_async(*({"row_id": i} for i in ids[start : start + 1000]))


async def _noop(row_id: int) -> None:  # the enqueuing side only needs the task's name
    raise NotImplementedError


async def worker(dsn: str, sim: str, concurrency: int) -> None:
    app = build_app(dsn)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False)
    await pool.open()
    job = Job(sim, pool)

    @app.task(name="approve")
    async def approve(row_id: int) -> None:
        await job.run(row_id)

    try:
        async with app.open_async():
            print("ready", flush=True)  # noqa: T201 - the parent waits for this line
            await app.run_worker_async(
                concurrency=concurrency, wait=False, install_signal_handlers=False
            )
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        print(json.dumps({"cpu": cpu, "max_rss_mib": usage.ru_maxrss / 1024}), flush=True)  # noqa: T201
    finally:
        await job.http.aclose()
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(worker(args.dsn, args.sim, args.concurrency))

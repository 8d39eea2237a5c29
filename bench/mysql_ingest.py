"""Ingest latency from a MariaDB/MySQL business database: outbox insert → create call.

``python -m bench.mysql_ingest --runs 3 --count 100 --rate 5`` starts an embedded
PostgreSQL (syncd migrated), a local ``mariadbd`` (syncd's footprint migrated in a
database ``erp``) and the simulator, then per run a fresh ``syncd run`` (default relay
settings: ``poll_min`` 50 ms, ``poll_max`` 2 s) and inserts one row into ``erp``'s
``syncd_outbox`` every ``1/rate`` seconds, each its own autocommitted statement.

The latency of a row is the simulator's receipt of its create (its own record, same
machine clock) minus the moment the INSERT returned (committed). It covers the relay's
poll, the copy into ``syncd.outbox``, ingest (woken by the relay), and submit. Written
to ``bench/results/mysql_ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import statistics
import time
from typing import Any

from bench.harness import RESULTS, Bench, bench, log, save, summary, wait_until
from syncd.db.mysql import migrations as mysql_migrations
from syncd.db.mysql.url import MySQLDatabase
from syncd.embedded_mysql import LocalMySQL
from tests.mysql import mysql_run

KIND = """
[databases.erp]
dsn = "{dsn}"

[kinds.mleave]
process_code = "PROC-SIM-LEAVE"
originator = "applicant"
database = "erp"
[kinds.mleave.form]
"请假类型" = "leave_type"
'["开始时间","结束时间"]' = {{ fields = ["start_date", "end_date"] }}
"天数" = "days"
"请假事由" = {{ template = "{{reason}}" }}
"""
INSERT = "INSERT INTO syncd_outbox (kind, business_key, payload) VALUES ('mleave', %s, %s)"


def payload(n: int) -> str:
    return json.dumps(
        {
            "applicant": f"u{1 + n % 6}",
            "leave_type": "年假",
            "start_date": "2026-01-10",
            "end_date": "2026-01-11",
            "days": 2,
            "reason": f"回家 🏠 {n}",
        },
        ensure_ascii=False,
    )


def one_run(b: Bench, erp: str, run: int, count: int, rate: float) -> dict[str, Any]:
    sim, sim_url = b.simulator(rule_delay=1.0)
    config = b.config(sim_url, name=f"syncd-mysql-{run}")
    config.write_text(config.read_text() + KIND.format(dsn=erp))
    daemon = b.daemon(config, name=f"syncd-mysql-{run}")
    time.sleep(3.0)  # started, its relay polling
    inserted: dict[str, float] = {}
    for n in range(count):
        key = f"r{run}-{n}"
        mysql_run(erp, INSERT, key, payload(n))
        inserted[key] = time.time()
        time.sleep(1.0 / rate)
    query = (
        "SELECT count(*) FROM syncd.approval WHERE kind = 'mleave' AND business_key LIKE %s "
        "AND instance_id IS NOT NULL"
    )
    wait_until(lambda: b.sql(query, (f"r{run}-%",))[0][0] >= count, timeout=120)
    rows = b.sql(
        "SELECT business_key, instance_id FROM syncd.approval WHERE business_key LIKE %s",
        (f"r{run}-%",),
    )
    daemon.stop()
    created = {i["id"]: i["created"] for i in Bench.sim_stats(sim)["instances"]}
    latencies = [1000 * (created[i] - inserted[k]) for k, i in rows if i in created]
    stats = summary(latencies)
    log(f"run {run}: insert→create p50 {stats['p50']:.1f} ms, p99 {stats['p99']:.1f} ms")
    return {"approvals": len(latencies), "insert_to_create_ms": stats}


def main(args: argparse.Namespace) -> None:
    server = LocalMySQL()
    server.start()
    try:
        mysql_run(server.url(), "CREATE DATABASE erp CHARACTER SET utf8mb4")
        erp = server.url("erp")

        async def migrate() -> None:
            async with mysql_migrations.opened(MySQLDatabase("erp", erp)) as engine:
                await mysql_migrations.apply(engine, "erp")

        asyncio.run(migrate())
        with bench() as b:
            runs = [one_run(b, erp, n + 1, args.count, args.rate) for n in range(args.runs)]
    finally:
        server.close()
    p50s = [float(r["insert_to_create_ms"]["p50"]) for r in runs]
    p99s = [float(r["insert_to_create_ms"]["p99"]) for r in runs]
    result = {
        "count": args.count,
        "rate_per_second": args.rate,
        "runs": runs,
        "p50_ms": {"median": statistics.median(p50s), "min": min(p50s), "max": max(p50s)},
        "p99_ms": {"median": statistics.median(p99s), "min": min(p99s), "max": max(p99s)},
    }
    log(f"p50 median {result['p50_ms']}, p99 {result['p99_ms']}")
    try:
        save("mysql_ingest", result)
    except importlib.metadata.PackageNotFoundError:  # the machine's record needs the bench extra
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "mysql_ingest.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=100, help="rows per run")
    parser.add_argument("--rate", type=float, default=5.0, help="rows per second")
    main(parser.parse_args())

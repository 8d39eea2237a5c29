"""Throughput: approvals per second end to end, syncd against the Procrastinate baseline.

``python -m bench.throughput --backlog 10000`` fills the business table with a backlog
(one INSERT; the capture trigger writes the outbox rows), then starts the daemon
(``syncd run`` with its pacing lifted, see ``bench.daemonproc``) against a simulator with
no limits, no latency and a rule that agrees at once, and waits until every row has its
outcome written back. Then, in the same run and on the same PostgreSQL and simulator,
the baseline worker does the same job (``bench.baseline``). Reports approvals/s, CPU
seconds per approval (daemon, PostgreSQL, simulator) and statements and commits per
approval (``pg_stat_statements``, ``pg_stat_database``), and a per-second timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.harness import PY, Bench, Child, bench, log, save, wait_until


def sample(b: Bench, query: str, child: Child, t0: float, series: list[dict[str, Any]]) -> int:
    [(done,)] = b.sql(query)
    rss, _ = child.rss()
    series.append(
        {"t": round(time.time() - t0, 2), "done": done, "rss_mib": rss, "cpu": child.cpu()}
    )
    return int(done)


def timeline(b: Bench, t0: float, column: str, table: str) -> list[dict[str, Any]]:
    """Per second since ``t0``: how many rows got ``column`` set in that second."""
    rows = b.sql(
        f"SELECT floor(extract(epoch FROM {column}) - %s)::int AS s, count(*) "
        f"FROM {table} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1",
        (t0,),
    )
    return [{"second": int(s), "count": int(c)} for s, c in rows]


def run_syncd(b: Bench, sim_url: str, backlog: int, timeout: float) -> dict[str, Any]:
    config = b.config(sim_url, batch_size=args.batch_size, concurrency=args.concurrency)
    b.reset_counters()
    pg_cpu0 = b.postgres_cpu()
    daemon = b.daemon(config, unpaced=True)
    t0 = daemon.ready_at
    series: list[dict[str, Any]] = []
    query = "SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL"
    done = wait_until(
        lambda: sample(b, query, daemon, t0, series) >= backlog, timeout=timeout, every=1.0
    )
    [(last,)] = b.sql("SELECT extract(epoch FROM max(written_back_at)) FROM syncd.approval")
    elapsed = float(last) - t0 if last else float("nan")
    cpu = daemon.cpu() - daemon.cpu_at_ready
    _, peak = daemon.rss()
    counters = b.counters()
    pg_cpu = b.postgres_cpu() - pg_cpu0
    top = b.top_statements()
    claims = b.claim_statements()
    [(written,)] = b.sql(query)
    states = dict(b.sql("SELECT state, count(*) FROM syncd.approval GROUP BY state"))
    [(inbox,)] = b.sql("SELECT count(*) FROM syncd.inbox")
    [(history,)] = b.sql("SELECT count(*) FROM syncd.approval_event")
    daemon.stop()
    result = {
        "completed": done,
        "approvals": int(written),
        "states": states,
        "seconds": elapsed,
        "approvals_per_second": written / elapsed,
        "daemon_cpu_seconds": cpu,
        "daemon_cpu_ms_per_approval": 1000 * cpu / max(1, written),
        "daemon_peak_rss_mib": peak,
        "postgres_cpu_seconds": pg_cpu,
        "statements_per_approval": counters["statements"] / max(1, written),
        "commits_per_approval": counters["commits"] / max(1, written),
        "db_exec_ms_per_approval": counters["exec_ms"] / max(1, written),
        "inbox_events_per_approval": inbox / max(1, written),
        "history_rows_per_approval": history / max(1, written),
        "counters": counters,
        "top_statements": top,
        "claims": claims,
        "samples": series,
        "timeline": {
            "ingested": timeline(b, t0, "created_at", "syncd.approval"),
            "created": timeline(b, t0, "instance_created_at", "syncd.approval"),
            "written": timeline(b, t0, "written_back_at", "syncd.approval"),
        },
    }
    log(
        f"syncd: {written} approvals in {elapsed:.1f} s = {result['approvals_per_second']:.1f}/s, "
        f"daemon CPU {cpu:.1f} s, {result['statements_per_approval']:.1f} statements/approval"
    )
    return result


def run_baseline(b: Bench, sim_url: str, backlog: int, timeout: float) -> dict[str, Any]:
    from bench import baseline

    asyncio.run(baseline.prepare(b.dsn))
    asyncio.run(baseline.enqueue(b.dsn, backlog))
    b.reset_counters()
    pg_cpu0 = b.postgres_cpu()
    argv = [PY, "-m", "bench.baseline", "worker", "--dsn", b.dsn, "--sim", sim_url]
    argv += ["--concurrency", str(args.concurrency)]
    worker = Child("baseline", argv, b.work / "baseline.log").start()
    b.children.append(worker)
    t0 = worker.ready_at
    series: list[dict[str, Any]] = []
    query = "SELECT count(*) FROM app.leave_baseline WHERE decided_at IS NOT NULL"
    done = wait_until(
        lambda: sample(b, query, worker, t0, series) >= backlog, timeout=timeout, every=1.0
    )
    assert worker.process is not None and worker.process.stdout is not None
    try:
        worker.process.wait(60)
        usage = json.loads(worker.process.stdout.readline() or "{}")
    except Exception:
        usage = {}
    worker.stop()
    [(last,)] = b.sql("SELECT extract(epoch FROM max(decided_at)) FROM app.leave_baseline")
    elapsed = float(last) - t0 if last else float("nan")
    [(written,)] = b.sql(query)
    counters = b.counters()
    cpu = float(usage.get("cpu", float("nan")))
    result = {
        "completed": done,
        "approvals": int(written),
        "seconds": elapsed,
        "approvals_per_second": written / elapsed,
        "worker_cpu_seconds": cpu,
        "worker_cpu_ms_per_approval": 1000 * cpu / max(1, written),
        "worker_peak_rss_mib": usage.get("max_rss_mib"),
        "postgres_cpu_seconds": b.postgres_cpu() - pg_cpu0,
        "statements_per_approval": counters["statements"] / max(1, written),
        "commits_per_approval": counters["commits"] / max(1, written),
        "db_exec_ms_per_approval": counters["exec_ms"] / max(1, written),
        "counters": counters,
        "top_statements": b.top_statements(),
        "samples": series,
        "timeline": {"written": timeline(b, t0, "decided_at", "app.leave_baseline")},
    }
    log(
        f"baseline: {written} approvals in {elapsed:.1f} s = "
        f"{result['approvals_per_second']:.1f}/s, worker CPU {cpu:.1f} s"
    )
    return result


def main() -> None:
    started = time.time()
    with bench() as b:
        b.submit(args.backlog)
        log(f"backlog of {args.backlog} business rows submitted")
        sim, sim_url = b.simulator(rule_delay=0.0, qps=None)
        sim_cpu0 = sim.cpu()
        syncd = run_syncd(b, sim_url, args.backlog, args.timeout)
        syncd["simulator_cpu_seconds"] = sim.cpu() - sim_cpu0
        result: dict[str, Any] = {"backlog": args.backlog, "syncd": syncd}
        if not args.no_baseline:
            sim_cpu0 = sim.cpu()
            base = run_baseline(b, sim_url, args.backlog, args.timeout)
            base["simulator_cpu_seconds"] = sim.cpu() - sim_cpu0
            result["baseline"] = base
            result["ratio_syncd_to_baseline"] = (
                syncd["approvals_per_second"] / base["approvals_per_second"]
            )
            log(f"syncd/baseline throughput ratio: {result['ratio_syncd_to_baseline']:.2f}")
        stats = Bench.sim_stats(sim)
        result["simulator_calls"] = stats["calls"]
    result["wall_seconds"] = time.time() - started
    result["settings"] = {"batch_size": args.batch_size, "concurrency": args.concurrency}
    save(args.name or f"throughput-{args.backlog}", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=3600, help="per system, seconds")
    parser.add_argument("--batch-size", type=int, default=50, help="[pipeline] batch_size")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight, both")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--name", help="result file name (default: throughput-BACKLOG)")
    args = parser.parse_args()
    main()

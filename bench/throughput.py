"""Throughput: approvals per second end to end, syncd against the Procrastinate baseline.

``python -m bench.throughput --backlog 10000 --runs 3`` measures each system ``--runs``
times, alternating which goes first (syncd, baseline; baseline, syncd; syncd, baseline;
… so neither always runs on a warmer machine), and every run gets its own freshly
created PostgreSQL and simulator: no run pays for another's tables, dead rows or
checkpoints. Each database first gets as much finished work as the run will do
(``--history``, by default the backlog: decided business rows, and syncd's approvals with
their history or the baseline's succeeded jobs with their events), as a database that has
run a while holds; once the backlog is loaded too the database is vacuumed, analysed and
checkpointed (``Bench.settle``). So neither system starts on tables without statistics,
or with statistics taken while its tables were empty: a plan chosen then (a sequential
scan of a table thought empty) stays in each connection's cache until the next
``ANALYZE`` of that table, which for a table filled during the run comes a minute or
more later.
A syncd run fills the business table with the backlog (one INSERT; the capture trigger
writes the outbox rows), starts the daemon (``syncd run`` with its pacing
lifted, see ``bench.daemonproc``) against a simulator with no limits, no latency and a
rule that agrees at once, and waits until every row has its outcome written back; a
baseline run enqueues the same backlog and runs its worker (``bench.baseline``).

Each run reports approvals/s, CPU seconds per approval (daemon or worker, PostgreSQL,
simulator), statements and commits per approval (``pg_stat_statements``,
``pg_stat_database``) and a per-second timeline; the result file keeps every run, and a
summary per system: the median with the range (min–max) of each figure, and the
syncd/baseline ratio of approvals/s as the median of the rounds' ratios with its range.
Two figures are "inside the noise" when their ranges overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from bench.harness import PY, Bench, Child, bench, log, save, wait_until
from bench.scale import HISTORY

#: The baseline's finished work: each job succeeded, with Procrastinate's three events.
BASELINE_HISTORY = [
    """
    INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)
    SELECT 'default', 'approve', jsonb_build_object('row_id', b.id), 'succeeded', 1
      FROM app.leave_baseline b
     WHERE b.status = 'approved'
    """,
    """
    INSERT INTO procrastinate_events (job_id, type, at)
    SELECT j.id, e.type::procrastinate_job_event_type, now() - interval '30 days'
      FROM procrastinate_jobs j
     CROSS JOIN (VALUES ('deferred'), ('started'), ('succeeded')) e (type)
    """,
]


def history(b: Bench, system: str, count: int) -> None:
    """``count`` approvals of finished work, as a database that has run a while holds:
    business rows decided, and each system's own records of them (for syncd the approvals
    with their outbox rows, tasks, history lines and inbox events, as ``bench.scale``
    makes them; for the baseline succeeded jobs with their events)."""
    table = "app.leave_request" if system == "syncd" else "app.leave_baseline"
    b.sql(
        f"INSERT INTO {table} (applicant, days, reason, status, approval_status, instance_id, "
        "decided_at) SELECT 'u1', 2, 'old ' || g, 'approved', 'APPROVED', 'hist-' || g, "
        "now() - interval '30 days' FROM generate_series(1, %s::int) g",
        (count,),
    )
    for statement in HISTORY if system == "syncd" else BASELINE_HISTORY:
        b.sql(statement, {"n": count} if system == "syncd" else None)  # type: ignore[arg-type]


def sample(b: Bench, query: str, child: Child, t0: float, series: list[dict[str, Any]]) -> int:
    """One sample a second: rows done, memory, CPU, and the tables (auto)vacuum is working
    on at that moment (``pg_stat_progress_vacuum``), to tell whether a dip is vacuum's."""
    [(done,)] = b.sql(query)
    rss, _ = child.rss()
    vacuum = b.sql(
        "SELECT p.relid::regclass::text, p.phase FROM pg_stat_progress_vacuum p "
        "JOIN pg_database d ON d.oid = p.datid WHERE d.datname = current_database()"
    )
    series.append(
        {
            "t": round(time.time() - t0, 2),
            "done": done,
            "rss_mib": rss,
            "cpu": child.cpu(),
            "vacuum": [f"{table}: {phase}" for table, phase in vacuum],
        }
    )
    return int(done)


def vacuums(b: Bench) -> list[dict[str, Any]]:
    """Each table's (auto)vacuums and analyses during the run."""
    rows = b.sql(
        "SELECT schemaname || '.' || relname, autovacuum_count, vacuum_count, "
        "autoanalyze_count, n_dead_tup, n_live_tup FROM pg_stat_user_tables "
        "WHERE autovacuum_count + vacuum_count + autoanalyze_count > 0 ORDER BY 1"
    )
    return [
        {"table": t, "autovacuum": av, "vacuum": v, "autoanalyze": aa, "dead": d, "live": live}
        for t, av, v, aa, d, live in rows
    ]


def timeline(b: Bench, t0: float, column: str, table: str) -> list[dict[str, Any]]:
    """Per second since ``t0``: how many rows got ``column`` set in that second (the
    history's rows, the first ``--history`` ids, left out)."""
    rows = b.sql(
        f"SELECT floor(extract(epoch FROM {column}) - %s)::int AS s, count(*) "
        f"FROM {table} WHERE {column} IS NOT NULL AND id > %s GROUP BY 1 ORDER BY 1",
        (t0, args.history),
    )
    return [{"second": int(s), "count": int(c)} for s, c in rows]


def run_syncd(b: Bench, sim_url: str, backlog: int, timeout: float) -> dict[str, Any]:
    h = int(args.history)  # the history's rows are the first ids
    config = b.config(sim_url, batch_size=args.batch_size, concurrency=args.concurrency)
    b.reset_counters()
    pg_cpu0 = b.postgres_cpu()
    daemon = b.daemon(config, unpaced=True)
    t0 = daemon.ready_at
    series: list[dict[str, Any]] = []
    query = f"SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL AND id > {h}"
    done = wait_until(
        lambda: sample(b, query, daemon, t0, series) >= backlog, timeout=timeout, every=1.0
    )
    [(last,)] = b.sql(
        f"SELECT extract(epoch FROM max(written_back_at)) FROM syncd.approval WHERE id > {h}"
    )
    elapsed = float(last) - t0 if last else float("nan")
    cpu = daemon.cpu() - daemon.cpu_at_ready
    _, peak = daemon.rss()
    counters = b.counters()
    pg_cpu = b.postgres_cpu() - pg_cpu0
    top = b.top_statements()
    longest = b.top_statements(by="time")
    claims = b.claim_statements()
    vacuumed = vacuums(b)
    [(written,)] = b.sql(query)
    states = dict(b.sql(f"SELECT state, count(*) FROM syncd.approval WHERE id > {h} GROUP BY 1"))
    [(inbox,)] = b.sql("SELECT count(*) - %s FROM syncd.inbox", (h,))
    [(history,)] = b.sql("SELECT count(*) - 2 * %s FROM syncd.approval_event", (h,))
    daemon.stop()
    result = {
        "completed": done,
        "t0": t0,  # the epoch the timeline's seconds count from (for the simulator's GC pauses)
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
        "longest_statements": longest,
        "claims": claims,
        "vacuums": vacuumed,
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
    h = int(args.history)  # the history's rows are the first ids
    from bench import baseline

    asyncio.run(baseline.prepare(b.dsn))
    history(b, "baseline", args.history)
    asyncio.run(baseline.enqueue(b.dsn, backlog))
    b.settle()
    b.reset_counters()
    pg_cpu0 = b.postgres_cpu()
    argv = [PY, "-m", "bench.baseline", "worker", "--dsn", b.dsn, "--sim", sim_url]
    argv += ["--concurrency", str(args.concurrency)]
    worker = Child("baseline", argv, b.work / "baseline.log").start()
    b.children.append(worker)
    t0 = worker.ready_at
    series: list[dict[str, Any]] = []
    query = f"SELECT count(*) FROM app.leave_baseline WHERE decided_at IS NOT NULL AND id > {h}"
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
    [(last,)] = b.sql(
        f"SELECT extract(epoch FROM max(decided_at)) FROM app.leave_baseline WHERE id > {h}"
    )
    elapsed = float(last) - t0 if last else float("nan")
    [(written,)] = b.sql(query)
    counters = b.counters()
    cpu = float(usage.get("cpu", float("nan")))
    result = {
        "completed": done,
        "t0": t0,  # the epoch the timeline's seconds count from (for the simulator's GC pauses)
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
        "longest_statements": b.top_statements(by="time"),
        "vacuums": vacuums(b),
        "samples": series,
        "timeline": {"written": timeline(b, t0, "decided_at", "app.leave_baseline")},
    }
    log(
        f"baseline: {written} approvals in {elapsed:.1f} s = "
        f"{result['approvals_per_second']:.1f}/s, worker CPU {cpu:.1f} s"
    )
    return result


#: The figures summarised per system (median and range over the runs).
FIGURES = {
    "syncd": [
        "approvals_per_second",
        "daemon_cpu_ms_per_approval",
        "postgres_cpu_ms_per_approval",
        "simulator_cpu_ms_per_approval",
        "statements_per_approval",
        "commits_per_approval",
        "daemon_peak_rss_mib",
    ],
    "baseline": [
        "approvals_per_second",
        "worker_cpu_ms_per_approval",
        "postgres_cpu_ms_per_approval",
        "simulator_cpu_ms_per_approval",
        "statements_per_approval",
        "commits_per_approval",
        "worker_peak_rss_mib",
    ],
}


def one_run(system: str) -> dict[str, Any]:
    """One system over the whole backlog, on a PostgreSQL and a simulator of its own."""
    started = time.time()
    with bench() as b:
        if system == "syncd":
            history(b, "syncd", args.history)
            b.submit(args.backlog)
            log(f"backlog of {args.backlog} business rows submitted")
            b.settle()
        sim, sim_url = b.simulator(rule_delay=0.0, qps=None)
        sim_cpu0 = sim.cpu()
        run = run_syncd if system == "syncd" else run_baseline
        result = run(b, sim_url, args.backlog, args.timeout)
        result["simulator_cpu_seconds"] = sim.cpu() - sim_cpu0
        sim_stats = Bench.sim_stats(sim)
        result["simulator_calls"] = sim_stats["calls"]
        result["simulator_gc_pauses"] = sim_stats.get("gc_pauses", [])
    for part in ("postgres", "simulator"):
        result[f"{part}_cpu_ms_per_approval"] = (
            1000 * result[f"{part}_cpu_seconds"] / max(1, result["approvals"])
        )
    result["system"] = system
    result["wall_seconds"] = time.time() - started
    result["load_average_at_end"] = os.getloadavg()
    return result


def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of a figure over the runs, with the samples."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": values,
    }


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two figures' ranges overlap: their difference is inside the noise."""
    return bool(a["min"] <= b["max"] and b["min"] <= a["max"])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for system, figures in FIGURES.items():
        mine = [r for r in runs if r["system"] == system]
        if mine:
            summary[system] = {
                f: spread([float(r[f]) for r in mine if r.get(f) is not None]) for f in figures
            }
    if "baseline" in summary:
        rounds = sorted({r["round"] for r in runs})
        rate = {(r["round"], r["system"]): r["approvals_per_second"] for r in runs}
        summary["ratio_syncd_to_baseline"] = spread(
            [rate[n, "syncd"] / rate[n, "baseline"] for n in rounds]
        )
        summary["throughput_inside_noise"] = overlap(
            summary["syncd"]["approvals_per_second"], summary["baseline"]["approvals_per_second"]
        )
    return summary


def median_run(runs: list[dict[str, Any]], system: str) -> dict[str, Any]:
    """The run whose approvals/s is the median of its system's (the one plotted)."""
    mine = sorted(
        (r for r in runs if r["system"] == system), key=lambda r: r["approvals_per_second"]
    )
    return mine[(len(mine) - 1) // 2]


def main() -> None:
    started = time.time()
    systems = ["syncd"] if args.no_baseline else ["syncd", "baseline"]
    runs: list[dict[str, Any]] = []
    for n in range(args.runs):
        order = systems if n % 2 == 0 else systems[::-1]
        for position, system in enumerate(order):
            log(f"round {n + 1} of {args.runs}: {system}")
            runs.append({"round": n, "position": position, **one_run(system)})
    summary = summarise(runs)
    result: dict[str, Any] = {
        "backlog": args.backlog,
        "runs_per_system": args.runs,
        "history": args.history,
        "order": [(r["round"], r["system"]) for r in runs],
        "summary": summary,
        "syncd": median_run(runs, "syncd"),
    }
    if not args.no_baseline:
        result["baseline"] = median_run(runs, "baseline")
        ratio = summary["ratio_syncd_to_baseline"]
        result["ratio_syncd_to_baseline"] = ratio["median"]
        log(
            f"syncd/baseline throughput ratio: median {ratio['median']:.2f} "
            f"(range {ratio['min']:.2f}–{ratio['max']:.2f} over {args.runs} rounds)"
        )
    result["runs"] = runs
    result["wall_seconds"] = time.time() - started
    result["settings"] = {"batch_size": args.batch_size, "concurrency": args.concurrency}
    save(args.name or f"throughput-{args.backlog}", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=3600, help="per system, seconds")
    parser.add_argument("--batch-size", type=int, default=50, help="[pipeline] batch_size")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight, both")
    parser.add_argument("--runs", type=int, default=3, help="runs of each system, alternating")
    parser.add_argument(
        "--history", type=int, help="approvals of finished work first (default: the backlog)"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--name", help="result file name (default: throughput-BACKLOG)")
    args = parser.parse_args()
    if args.history is None:
        args.history = args.backlog
    main()

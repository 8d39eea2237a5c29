"""Scale: claim time and daemon memory with 1M rows of history and a 100k backlog.

``python -m bench.scale --history 1000000 --backlog 100000`` generates, with SQL,
``history`` finished approvals (each with its consumed outbox row, its two agreed
tasks, its processed inbox event and two history lines), then runs the daemon (pacing
lifted, as in the throughput benchmark) twice on that database: with a small backlog
(1,000) and with the large one, each for ``--seconds``. It reports the claim queries' execution time
(``pg_stat_statements``) and the daemon's resident memory over time: memory must not
grow with the backlog.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psycopg

from bench.harness import Bench, bench, log, save
from syncd.db.queries import QUERIES

HISTORY = [
    """
    INSERT INTO syncd.outbox (created_at, kind, business_key, payload, consumed_at)
    SELECT now() - interval '40 days' + g * interval '1 second', 'leave', 'h' || g,
           '{"applicant": "u1", "days": 2}', now() - interval '40 days' + g * interval '1 second'
      FROM generate_series(1, %(n)s) g
    """,
    """
    INSERT INTO syncd.approval
           (kind, business_key, round, outbox_id, state, payload, originator, process_code,
            form_values, instance_id, attempts, next_attempt_at, dingtalk_status,
            dingtalk_result, calls_spent, captured_at, created_at, submitted_at,
            instance_created_at, finished_at, written_back_at, updated_at)
    SELECT 'leave', o.business_key, 1, o.id, 'approved', o.payload, 'u1', 'PROC-SIM-LEAVE',
           '[]', 'hist-' || o.id, 1, o.created_at, 'COMPLETED', 'agree', 1, o.created_at,
           o.created_at, o.created_at, o.created_at, o.created_at, o.created_at, o.created_at
      FROM syncd.outbox o
    """,
    """
    INSERT INTO syncd.approval_event (approval_id, at, event_type, from_state, to_state, actor)
    SELECT a.id, a.updated_at, 'transition', x.f, x.t, 'history'
      FROM syncd.approval a
     CROSS JOIN (VALUES ('submitting', 'running'), ('running', 'approved')) x (f, t)
    """,
    """
    INSERT INTO syncd.task
           (approval_id, instance_id, record_type, record_key, activity_id, user_id, status,
            result, started_at, finished_at)
    SELECT a.id, a.instance_id, 'task', 'hist-task-' || a.id || '-' || n, 'node' || n, 'u2',
           'COMPLETED', 'AGREE', a.created_at, a.finished_at
      FROM syncd.approval a
     CROSS JOIN generate_series(1, 2) n
    """,
    """
    INSERT INTO syncd.inbox
           (dedup_key, channel, event_type, instance_id, payload, received_at, processed_at,
            attempts)
    SELECT 'hist-' || a.id, 'stream', 'bpms_instance_change', a.instance_id, '{}',
           a.finished_at, a.finished_at, 1
      FROM syncd.approval a
    """,
]


def generate_history(b: Bench, n: int) -> float:
    started = time.monotonic()
    for statement in HISTORY:
        b.sql(statement, {"n": n})  # type: ignore[arg-type]
    b.sql("VACUUM ANALYZE")
    return time.monotonic() - started


def explain(b: Bench, name: str) -> list[str]:
    """The claim's plan and timing now (rolled back: nothing is claimed)."""
    params = {"limit": 50, "now": "infinity", "owner": "bench", "lease_until": "infinity"}
    with psycopg.connect(b.dsn) as conn:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES[name],
            params,
        ).fetchall()
        conn.rollback()
    return [r[0] for r in rows]


def run(b: Bench, sim_url: str, backlog: int, seconds: float) -> dict[str, Any]:
    [(before,)] = b.sql("SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL")
    b.submit(backlog)
    b.sql("ANALYZE")
    b.reset_counters()
    daemon = b.daemon(
        b.config(sim_url, name=f"scale-{backlog}"), unpaced=True, name=f"scale-{backlog}"
    )
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rss, _ = daemon.rss()
        [(done,)] = b.sql("SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL")
        samples.append(
            {
                "t": round(time.time() - daemon.ready_at, 1),
                "rss_mib": rss,
                "done": int(done) - before,
            }
        )
        time.sleep(1.0)
    _, peak = daemon.rss()
    claims = b.claim_statements()
    daemon.stop()
    plans = {name: explain(b, name) for name in ("claim_submit_batch", "claim_inbox_batch")}
    [dead] = b.sql(
        "SELECT n_live_tup, n_dead_tup, last_autovacuum::text FROM pg_stat_user_tables "
        "WHERE schemaname = 'syncd' AND relname = 'approval'"
    )
    [(unconsumed,)] = b.sql("SELECT count(*) FROM syncd.outbox WHERE consumed_at IS NULL")
    done = samples[-1]["done"]
    result = {
        "backlog": backlog,
        "seconds": seconds,
        "approvals_written": done,
        "outbox_left": int(unconsumed),
        "rss_start_mib": samples[0]["rss_mib"],
        "rss_end_mib": samples[-1]["rss_mib"],
        "rss_peak_mib": peak,
        "claims": claims,
        "plans_after": plans,
        "approval_tuples_live_dead_autovacuum": list(dead),
        "samples": samples,
    }
    log(
        f"backlog {backlog}: {done} written in {seconds:.0f} s, RSS peak {peak:.0f} MiB, "
        + ", ".join(f"{c['stage']} {c['mean_ms']:.2f} ms" for c in claims)
    )
    return result


def main() -> None:
    started = time.time()
    with bench() as b:
        took = generate_history(b, args.history)
        [(size,)] = b.sql("SELECT pg_size_pretty(pg_database_size(current_database()))")
        log(f"{args.history} approvals of history generated in {took:.0f} s ({size})")
        sim, sim_url = b.simulator(rule_delay=0.0, qps=None)
        small = run(b, sim_url, args.small, args.seconds)
        large = run(b, sim_url, args.backlog, args.seconds)
        b.sim_stats(sim)
    save(
        "scale",
        {
            "history": args.history,
            "history_seconds": took,
            "database_size": size,
            "small": small,
            "large": large,
            "wall_seconds": time.time() - started,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000, help="the small backlog")
    parser.add_argument("--seconds", type=float, default=90.0, help="per run")
    args = parser.parse_args()
    main()

"""Where the CPU goes: one syncd run over a backlog, with the database and the daemon profiled.

``python -m bench.cpu --backlog 10000 --name cpu-HEAD [--py-spy 25]`` runs the daemon as
the throughput benchmark does (the same fair start: a history as large as the backlog,
then ``VACUUM ANALYZE`` and ``CHECKPOINT``; pacing lifted, the simulator with no limits),
waits for the end on the business table's update count from the statistics (so its own
polling costs PostgreSQL next to nothing), and records,
per approval: the daemon's CPU, PostgreSQL's CPU split by process (the backends serving
syncd, autovacuum, the checkpointer and WAL writer, and exited children), the WAL written
and the rows each table had inserted, updated (HOT or not) and deleted, the statements
by total execution time with ``pg_stat_statements.track = all`` (so the statements inside
syncd's SQL functions are counted too), and, with ``--py-spy SECONDS``, a py-spy profile
of the daemon (the folded stacks next to the result file, their top shares in it), and,
with ``--waits``, what the busy backends were doing 20 times a second (running, or waiting
on a lock, on I/O or on the client) per statement, from ``pg_stat_activity``: a statement's
execution time counts its waits, its CPU does not. ``--set NAME=VALUE`` runs with a server
setting changed, for an A/B of the setting; ``--unix`` connects the daemon over the
server's Unix socket instead of loopback TCP; ``--pin`` runs the daemon alone on CPU 0
and the rest on CPU 1, so that a py-spy profile counts the daemon's own work rather than
the time the database held its core.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import RESULTS, Bench, bench, log, save, wait_until
from bench.throughput import history

DONE = "SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL AND id > %s"


def written_back(b: Bench) -> int:
    """Approvals written back: the business table's updates as the statistics count them
    (no scan, so the benchmark's own polling costs PostgreSQL next to nothing), then, once
    they say all, the exact count."""
    [(updates,)] = b.sql(
        "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'app.leave_request'::regclass"
    )
    return int(b.sql(DONE, (args.history,))[0][0]) if updates >= args.backlog else int(updates)


def statements_by_time(b: Bench, limit: int = 25) -> list[dict[str, Any]]:
    rows = b.sql(
        "SELECT calls, total_exec_time, rows, toplevel,"
        " left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = current_database() AND s.query NOT LIKE '%%pg_stat%%' "
        "ORDER BY total_exec_time DESC LIMIT %s",
        (limit,),
    )
    return [
        {
            "calls": int(c),
            "total_ms": round(float(t), 1),
            "rows": int(r),
            "top": bool(top),
            "query": q,
        }
        for c, t, r, top, q in rows
    ]


ACTIVE = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'running'),"
    " left(regexp_replace(query, '\\s+', ' ', 'g'), 120) FROM pg_stat_activity"
    " WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


class WaitSampler(threading.Thread):
    """Samples what the busy backends are doing, ``every`` seconds, until stopped."""

    def __init__(self, dsn: str, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.every = every
        self.samples = 0
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.halt.wait(self.every):
                self.samples += 1
                for state, query in conn.execute(ACTIVE).fetchall():
                    self.seen[(state, query)] += 1

    def report(self, top: int = 30) -> dict[str, Any]:
        """Busy backends on average, by state, and the statements most often seen busy."""
        n = max(1, self.samples)
        states: collections.Counter[str] = collections.Counter()
        for (state, _), count in self.seen.items():
            states[state] += count
        return {
            "samples": self.samples,
            "busy_backends_by_state": {k: round(v / n, 3) for k, v in states.most_common()},
            "statements": [
                {"state": state, "query": query, "busy": round(count / n, 3)}
                for (state, query), count in self.seen.most_common(top)
            ],
        }


def fold(path: Path, top: int = 40) -> dict[str, list[tuple[str, float]]]:
    """Inclusive and leaf shares (percent of samples) of a py-spy raw (folded) profile."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        names = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        for name in set(names):
            inclusive[name] += n
        leaf[names[-1]] += n
    share = 100 / max(1, total)

    def pick(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(n * share, 1)) for name, n in counter.most_common(top)]

    return {"inclusive": pick(inclusive), "leaf": pick(leaf)}


def configure(b: Bench) -> None:
    """The server's settings for the run: statements counted, plans logged, ``--set``."""
    b.sql("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
    if args.explain is not None:  # plans of the slow statements, in the server's log
        b.sql("ALTER SYSTEM SET session_preload_libraries = 'auto_explain'")
        b.sql(f"ALTER SYSTEM SET auto_explain.log_min_duration = {int(args.explain)}")
        b.sql("ALTER SYSTEM SET auto_explain.log_nested_statements = on")
        if args.analyze:  # actual rows, loops and buffers (slows every statement)
            b.sql("ALTER SYSTEM SET auto_explain.log_analyze = on")
            b.sql("ALTER SYSTEM SET auto_explain.log_buffers = on")
            b.sql("ALTER SYSTEM SET auto_explain.log_timing = off")
    for setting in args.set:  # e.g. plan_cache_mode=force_generic_plan, for an A/B
        name, _, value = setting.partition("=")
        b.sql(f"ALTER SYSTEM SET {name} = '{value}'")
    b.sql("SELECT pg_reload_conf()")


def pin(pid: int) -> None:
    """Move every thread of ``pid`` to CPU 0; this process and what it starts keep CPU 1."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {0})


def py_spy(pid: int, folded: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording ``pid`` into ``folded`` for ``--py-spy`` seconds, if asked for."""
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not args.py_spy or not Path(spy_bin).exists():
        return None
    argv = [spy_bin, "record", "--pid", str(pid), "--duration", str(args.py_spy)]
    argv += ["--rate", "100", "--format", "raw", "--nonblocking", "-o", str(folded)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    if args.pin:  # the database and the simulator inherit this
        os.sched_setaffinity(0, {1})
    with bench() as b:
        configure(b)
        history(b, "syncd", args.history)
        b.submit(args.backlog)
        b.settle()
        sim, sim_url = b.simulator(rule_delay=0.0, qps=None)
        config = b.config(sim_url)
        if args.unix:  # the daemon connects over the server's Unix socket, not loopback TCP
            unix = f"postgresql://postgres@/postgres?host={b.pg.home}&port={b.pg.port}"
            config.write_text(config.read_text().replace(b.dsn, unix))
        b.reset_counters()
        [(wal0,)] = b.sql("SELECT pg_current_wal_lsn()::text")
        pg0 = b.postgres_cpu_by_role()
        sim0 = sim.cpu()
        daemon = b.daemon(config, unpaced=True)
        if args.pin:
            pin(daemon.pid)
        folded = RESULTS / f"{args.name}.folded"
        spy = py_spy(daemon.pid, folded)
        sampler = WaitSampler(b.dsn) if args.waits else None
        if sampler is not None:
            sampler.start()
        done = wait_until(lambda: written_back(b) >= args.backlog, args.timeout, every=1.0)
        if sampler is not None:
            sampler.halt.set()
            sampler.join()
        [(last,)] = b.sql(
            "SELECT extract(epoch FROM max(written_back_at)) FROM syncd.approval WHERE id > %s",
            (args.history,),
        )
        cpu = daemon.cpu() - daemon.cpu_at_ready
        stat = Path(f"/proc/{daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        system_share = int(stat[12]) / max(1, int(stat[11]) + int(stat[12]))
        pg1 = b.postgres_cpu_by_role()
        [(wal,)] = b.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (wal0,))
        writes = b.sql(
            "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_hot_upd,"
            " n_tup_del FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"
        )
        counters = b.counters()
        statements = statements_by_time(b)
        [(toplevel,)] = b.sql(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
            "AND s.toplevel AND s.query NOT LIKE '%pg_stat%'"
        )
        [(written,)] = b.sql(DONE, (args.history,))
        daemon.stop()
        if spy is not None:
            spy.wait(args.py_spy + 30)
        n = max(1, int(written))
        roles = {k: round(1000 * (pg1.get(k, 0.0) - pg0.get(k, 0.0)) / n, 3) for k in pg1}
        result: dict[str, Any] = {
            "backlog": args.backlog,
            "history": args.history,
            "completed": done,
            "approvals": int(written),
            "approvals_per_second": written / (float(last) - daemon.ready_at),
            "daemon_cpu_ms_per_approval": 1000 * cpu / n,
            "daemon_system_cpu_share": system_share,  # the kernel's part (whole life)
            "postgres_cpu_ms_per_approval": sum(roles.values()),
            "postgres_cpu_ms_per_approval_by_role": roles,
            "simulator_cpu_ms_per_approval": 1000 * (sim.cpu() - sim0) / n,
            "statements_per_approval": counters["statements"] / n,
            "toplevel_statements_per_approval": int(toplevel) / n,
            "commits_per_approval": counters["commits"] / n,
            "db_exec_ms_per_approval": counters["exec_ms"] / n,
            "wal_bytes_per_approval": float(wal) / n,
            # rows inserted, updated (of them HOT) and deleted per approval, by table
            "rows_written_per_approval": {
                table: [round(int(v) / n, 2) for v in counts]
                for table, *counts in sorted(writes, key=lambda w: -(w[1] + w[2] + w[4]))
            },
            "statements_by_time": statements,
        }
        if args.explain is not None:
            plans = RESULTS / f"{args.name}.plans.log"
            plans.write_text((b.pg.home / "postgres.log").read_text(errors="replace"))
            result["plans"] = plans.name
        if spy is not None and folded.exists():
            result["py_spy"] = fold(folded)
        if sampler is not None:
            result["waits"] = sampler.report()
    log(
        f"{written} approvals, {result['approvals_per_second']:.0f}/s: daemon "
        f"{result['daemon_cpu_ms_per_approval']:.2f} ms, PostgreSQL "
        f"{result['postgres_cpu_ms_per_approval']:.2f} ms {roles}, "
        f"{result['statements_per_approval']:.2f} statements, "
        f"{result['wal_bytes_per_approval']:.0f} WAL bytes per approval"
    )
    save(args.name, result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--history", type=int, help="approvals of finished work first (default: the backlog)"
    )
    parser.add_argument("--py-spy", type=int, default=0, help="profile the daemon this long")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the daemon alone on CPU 0, the rest on CPU 1: a py-spy profile then counts "
        "the daemon's own work, not the time the database took its core",
    )
    parser.add_argument("--name", default="cpu")
    parser.add_argument(
        "--explain", type=int, help="log the plans of statements slower than this many ms"
    )
    parser.add_argument(
        "--analyze", action="store_true", help="with --explain: actual rows and buffers"
    )
    parser.add_argument(
        "--waits", action="store_true", help="sample what the busy backends wait on"
    )
    parser.add_argument(
        "--unix", action="store_true", help="the daemon connects over the Unix socket"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a PostgreSQL setting for the run (ALTER SYSTEM), e.g. for an A/B",
    )  # fmt: skip
    args = parser.parse_args()
    if args.history is None:
        args.history = args.backlog
    main()

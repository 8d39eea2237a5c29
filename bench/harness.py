"""What every benchmark shares: an embedded PostgreSQL with syncd's schema and a business
table, the simulator and the daemon as child processes, and their CPU and memory.

Everything listens on 127.0.0.1. Child processes are started by this module and ended
by it (SIGTERM, then SIGKILL after a grace period), each by its own pid.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from syncd import __version__
from syncd.db import migrations
from syncd.embedded import EmbeddedPostgres, free_port
from tests.business import LEAVE_TABLE

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

APP_KEY = "dingsimappkey0001"
APP_SECRET = "sim-app-secret-0001"
CALLBACK_TOKEN = "simtoken123"
CALLBACK_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

CONFIG = """
replica_name = "{name}"
[database]
dsn = "{dsn}"
pool_max_size = {pool}
[dingtalk]
app_key = "{app_key}"
app_secret = "{app_secret}"
api_url = "{sim}"
oapi_url = "{sim}"
rate_per_second = {rate}
[events]
stream = {stream}
[events.callback]
enabled = {callback}
token = "{token}"
aes_key = "{aes_key}"
[http]
port = {http_port}
[log]
level = "{log_level}"
[pipeline]
batch_size = {batch_size}
concurrency = {concurrency}
[kinds.leave]
process_code = "PROC-SIM-LEAVE"
originator = "applicant"
correlation_field = "业务编号"
[kinds.leave.form]
"请假类型" = "leave_type"
'["开始时间","结束时间"]' = {{ fields = ["start_date", "end_date"] }}
"天数" = "days"
"请假事由" = {{ template = "{{reason}}" }}
[kinds.leave.write_back]
table = "app.leave_request"
key_column = "id"
status_map = {{ approved = "APPROVED", rejected = "REJECTED", canceled = "CANCELED" }}
[kinds.leave.write_back.columns]
approval_status = "status"
instance_id = "instance_id"
decided_at = "finished_at"
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)  # noqa: T201


def sql(dsn: str, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def sql_version() -> str:
    from syncd.embedded import bin_dir

    out = subprocess.run(
        [str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "syncd": __version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH.parent,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "postgres": sql_version(),
        "packages": {
            name: importlib.metadata.version(name)
            for name in ("psycopg", "procrastinate", "httpx", "uvicorn")
        },
    }


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a live process (plus its reaped children's, if asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    except OSError:
        pass
    return values["VmRSS"] / 1024, values["VmHWM"] / 1024


@dataclass
class Child:
    """A child process whose stdout says ``ready`` when it is."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[str] | None = None
    cpu_at_ready: float = 0.0
    ready_at: float = 0.0

    def start(self, timeout: float = 60.0) -> Child:
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("w"),
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=BENCH.parent,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()
        if line.strip() != "ready" or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.tail()}")
        self.ready_at = time.time()
        self.cpu_at_ready = self.cpu()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> tuple[float, float]:
        return rss_mib(self.pid)

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_simulator(
    work: Path,
    *,
    rule_delay: float = 0.0,
    qps: int | None = None,
    callback_url: str | None = None,
) -> tuple[Child, str]:
    """``bench.simproc`` as a child process (its logs and stats in ``work``), and its URL."""
    port = free_port()
    argv = [PY, "-m", "bench.simproc", "--port", str(port), "--rule-delay", str(rule_delay)]
    argv += ["--stats", str(work / f"sim-{port}.json")]
    if qps is not None:
        argv += ["--qps", str(qps)]
    if callback_url:
        argv += ["--callback-url", callback_url]
    child = Child("simulator", argv, work / f"sim-{port}.log").start()
    return child, f"http://127.0.0.1:{port}"


# --- the world ---------------------------------------------------------------------------


@dataclass
class Bench:
    """PostgreSQL with syncd's schema, the business table and its capture trigger."""

    pg: EmbeddedPostgres
    dsn: str
    work: Path
    children: list[Child] = field(default_factory=list)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return sql(self.dsn, query, params)

    def submit(self, count: int, days: int = 2) -> None:
        """``count`` business rows become 'submitted' in one statement (trigger → outbox)."""
        self.sql(
            "INSERT INTO app.leave_request (applicant, days, reason, status) "
            "SELECT 'u' || (1 + g %% 6), %s, 'rest ' || g, 'submitted' "
            "FROM generate_series(1, %s) g",
            (days, count),
        )

    def settle(self) -> None:
        """After loading a backlog: ``VACUUM ANALYZE`` and ``CHECKPOINT``, so the run starts
        on tables with statistics and no loading left to flush (the same for every system)."""
        self.sql("VACUUM ANALYZE")
        self.sql("CHECKPOINT")

    def simulator(
        self, *, rule_delay: float = 0.0, qps: int | None = None, callback_url: str | None = None
    ) -> tuple[Child, str]:
        child, url = start_simulator(
            self.work, rule_delay=rule_delay, qps=qps, callback_url=callback_url
        )
        self.children.append(child)
        return child, url

    @staticmethod
    def sim_stats(sim: Child) -> dict[str, Any]:
        """Stop the simulator and read what it recorded."""
        sim.stop()
        port = sim.argv[sim.argv.index("--port") + 1]
        return json.loads((sim.log_path.parent / f"sim-{port}.json").read_text())  # type: ignore[no-any-return]

    def config(
        self,
        sim_url: str,
        *,
        name: str = "syncd",
        stream: bool = True,
        callback: bool = False,
        http_port: int = 0,
        batch_size: int = 50,
        concurrency: int = 8,
        pool: int = 10,
        log_level: str = "INFO",
        rate: float = 15.0,
    ) -> Path:
        path = self.work / f"{name}.toml"
        path.write_text(
            CONFIG.format(
                dsn=self.dsn,
                app_key=APP_KEY,
                app_secret=APP_SECRET,
                sim=sim_url,
                stream=str(stream).lower(),
                callback=str(callback).lower(),
                token=CALLBACK_TOKEN,
                aes_key=CALLBACK_AES_KEY,
                http_port=http_port,
                batch_size=batch_size,
                concurrency=concurrency,
                pool=pool,
                log_level=log_level,
                name=name,
                rate=rate,
            )
        )
        return path

    def daemon(self, config: Path, *, unpaced: bool = False, name: str = "syncd") -> Child:
        """``syncd run`` (``--unpaced``: bench.daemonproc with pacing lifted)."""
        if unpaced:
            argv = [PY, "-m", "bench.daemonproc", str(config), "--unpaced"]
        else:
            argv = [PY, "-m", "bench.daemonproc", str(config)]
        child = Child(name, argv, self.work / f"{name}.log").start()
        self.children.append(child)
        return child

    # --- database counters ------------------------------------------------------------

    def reset_counters(self) -> None:
        self.sql("SELECT pg_stat_statements_reset()")
        self.sql("SELECT pg_stat_reset()")

    def counters(self) -> dict[str, Any]:
        """Statements (≈ round trips) and commits since ``reset_counters``, this database."""
        [(statements, exec_ms)] = self.sql(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0) "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat%'"
        )
        [(commits, rollbacks)] = self.sql(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return {
            "statements": int(statements),
            "exec_ms": float(exec_ms),
            "commits": int(commits),
            "rollbacks": int(rollbacks),
        }

    def top_statements(self, limit: int = 12, by: str = "calls") -> list[dict[str, Any]]:
        """The statements run most often (``by="calls"``) or longest (``"time"``)."""
        order = "total_exec_time" if by == "time" else "calls"
        rows = self.sql(
            "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query NOT LIKE '%%pg_stat%%' "
            f"ORDER BY {order} DESC LIMIT %s",
            (limit,),
        )
        return [
            {"calls": int(c), "total_ms": float(t), "mean_ms": float(m), "query": q}
            for c, t, m, q in rows
        ]

    def claim_statements(self) -> list[dict[str, Any]]:
        """Execution time of the claim queries (those with SKIP LOCKED), in ms."""
        rows = self.sql(
            "SELECT calls, mean_exec_time, max_exec_time, "
            "query "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query LIKE '%%SKIP LOCKED%%' "
            "ORDER BY calls DESC"
        )
        return [
            {"stage": _claim_stage(q), "calls": int(c), "mean_ms": float(m), "max_ms": float(x)}
            for c, m, x, q in rows
        ]

    def postgres_cpu_by_role(self) -> dict[str, float]:
        """CPU seconds of the postmaster, its live children by role (from their command
        line), and what its exited children used."""
        postmaster = int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])
        stat = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        roles: dict[str, float] = {"postmaster": cpu_seconds(postmaster)}
        roles["exited"] = (int(stat[13]) + int(stat[14])) / CLK_TCK
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid != postmaster:
                    continue
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            role = next((name for marker, name in _ROLES if marker in cmdline), "backends")
            roles[role] = roles.get(role, 0.0) + cpu_seconds(int(entry.name))
        return roles

    def postgres_cpu(self) -> float:
        """CPU of the postmaster, its live backends and the children it reaped."""
        return sum(self.postgres_cpu_by_role().values())


#: PostgreSQL's own processes, by what their command line says (the rest are backends).
_ROLES = (
    ("autovacuum", "autovacuum"),
    ("checkpointer", "checkpointer"),
    ("walwriter", "walwriter"),
    ("background writer", "bgwriter"),
)

_CLAIMS = (
    ("cancel_requested_at IS NOT NULL", "cancel"),
    ("syncd.outbox", "ingest (outbox)"),
    ("syncd.inbox", "apply (inbox)"),
    ("p.round < a.round", "submit"),
    ("lease_expires_at IS NULL OR", "reconcile"),
    ("written_back_at IS NULL", "write-back retry"),
    ("next_poll_at", "poll"),
)


def _claim_stage(query: str) -> str:
    for marker, stage in _CLAIMS:
        if marker in query:
            return stage
    return " ".join(query.split())[:60]


@contextmanager
def bench(*, keep: bool = False) -> Iterator[Bench]:
    """A fresh PostgreSQL (fsync off, pg_stat_statements on) with syncd migrated."""
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    work.chmod(0o755)
    pg = EmbeddedPostgres(
        settings={
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.max": "5000",
            "shared_buffers": "512MB",
            "max_wal_size": "4GB",
            "log_autovacuum_min_duration": "0",
        },
        keep=keep,
    )
    dsn = pg.start()
    children: list[Child] = []
    try:
        import asyncio

        asyncio.run(migrations.apply(dsn))
        sql(dsn, "CREATE EXTENSION pg_stat_statements")
        sql(dsn, LEAVE_TABLE)
        b = Bench(pg, dsn, work, children)
        install_capture(b)
        yield b
    finally:
        for child in reversed(children):
            child.stop()
        pg.close()
        log(f"work files (logs) in {work}")


def install_capture(b: Bench) -> None:
    """The capture trigger, as ``syncd capture add`` installs it."""
    import asyncio

    from syncd.db import capture
    from syncd.db.connect import connect

    async def go() -> None:
        async with connect(b.dsn) as conn:
            spec = capture.CaptureSpec(
                "leave", "app.leave_request", "id", "NEW.status = 'submitted'"
            )
            await capture.install(conn, spec)

    asyncio.run(go())


# --- numbers -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"machine": machine(), "load_average_at_end": os.getloadavg(), **data}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    log(f"wrote {path}")
    return path


def wait_until(check: Any, timeout: float, every: float = 0.5, on_tick: Any = None) -> bool:
    """Poll ``check()`` until true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if on_tick is not None:
            on_tick()
        time.sleep(every)
    return bool(check())


def get_json(url: str) -> Any:
    return httpx.get(url, timeout=10).json()

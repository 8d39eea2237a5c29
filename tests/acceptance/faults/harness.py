"""The fault-injection harness: real daemon processes, a cuttable TCP proxy, load, checks.

Everything talks over 127.0.0.1: the simulator is served by uvicorn in the test process,
the daemons are ``syncd run`` subprocesses (the installed console script), PostgreSQL is
the session server, optionally reached through :class:`Proxy`. The application's own
role owns the leave table, installs its capture and inserts the load; the daemons log in
as ``syncd_daemon``; only the checks read as the superuser. Waiting is done by
querying with a deadline, never by sleeping a guessed time; only the *moment* of a fault
(a kill, a cut) is drawn at random.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import string
import sys
import time
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from syncd.db import capture
from syncd.db.connect import connect
from syncd.simulator import Simulator, World
from tests.business import EVERY_OUTCOME, LEAVE_TABLE
from tests.roles import write_back_grants

APP_KEY = "dingsimappkey0001"
PROCESS_CODE = "PROC-SIM-LEAVE"
CORRELATION = "业务编号"
FINAL = ("approved", "rejected", "canceled")
PARKED = ("invalid", "dead")
#: Originators spread over the active people of the default world (list windows stay short).
APPLICANTS = ("u1", "u2", "u3", "u4", "u5", "u6", "manager1", "manager2", "hr1", "finance1")

FULL = os.environ.get("SYNCD_TEST_FAULTS_FULL") == "1"


def load(small: int, full: int) -> int:
    """The number of approvals for a scenario: ``full`` with SYNCD_TEST_FAULTS_FULL=1."""
    return full if FULL else small


def _token(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


@dataclass(frozen=True)
class Secrets:
    """Fresh, recognisable secrets per test, so a leak can be searched for in the logs."""

    app_secret: str = field(default_factory=lambda: f"appsecret{_token(24)}")
    callback_token: str = field(default_factory=lambda: f"cbtoken{_token(16)}")
    aes_key: str = field(default_factory=lambda: _token(43))
    db_password: str = field(default_factory=lambda: f"dbpw{_token(20)}")

    def all(self) -> list[str]:
        return [self.app_secret, self.callback_token, self.aes_key, self.db_password]


def build_world(keys: Secrets, *, seed: int = 7) -> World:
    """The default world with our secrets, fast rules, and a refuse path (4+ days)."""
    data: dict[str, Any] = World.default().dump()
    app = data["apps"][0]
    app.update(
        app_secret=keys.app_secret,
        callback_token=keys.callback_token,
        callback_aes_key=keys.aes_key,
        stream=True,
    )
    data["rules"] = [
        {"process_code": PROCESS_CODE, "field": "天数", "op": "le", "value": "3",
         "decision": "agree", "delay": 20, "remark": "同意"},
        {"process_code": PROCESS_CODE, "field": "天数", "op": "gt", "value": "3",
         "decision": "refuse", "delay": 20, "remark": "太长"},
    ]  # fmt: skip
    data["limits"] = {**data.get("limits", {}), "qps_per_api": 20}
    # Scaled by time_scale 0.01: a daemon gets 3 s to store and acknowledge an event.
    data["stream"] = {**data.get("stream", {}), "ack_timeout": 300, "later_delay": 100}
    data["faults"] = {"seed": seed}
    return World.model_validate(data)


def expected_status(days: int) -> str:
    return "approved" if days <= 3 else "rejected"


# --- the business side -----------------------------------------------------------------

#: The fault suite's own audit of the outcome columns.
AUDIT = """
-- Every write of the outcome columns, to prove each row is written exactly once. The
-- daemon's write-back fires the trigger, which runs as its owner (the application): the
-- daemon needs no grant on app.writes.
CREATE TABLE app.writes (
    leave_id int NOT NULL, approval_status text, instance_id text,
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE FUNCTION app.audit() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.approval_status, NEW.instance_id) IS DISTINCT FROM
       (OLD.approval_status, OLD.instance_id) THEN
        INSERT INTO app.writes (leave_id, approval_status, instance_id)
        VALUES (NEW.id, NEW.approval_status, NEW.instance_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER UPDATE ON app.leave_request
    FOR EACH ROW EXECUTE FUNCTION app.audit();
"""

#: The leave table with a column for every outcome field, and its audit.
BUSINESS = LEAVE_TABLE + EVERY_OUTCOME + AUDIT


async def prepare_business(app_dsn: str) -> None:
    """The leave table with its audit trigger, and syncd's capture trigger on it, made by
    the application's role (``app_dsn``), which owns them and so grants the daemon its
    write-back: the key column and the columns of :data:`WRITE_BACK`."""
    async with await psycopg.AsyncConnection.connect(app_dsn, autocommit=True) as conn:
        await conn.execute(BUSINESS)
        kinds = tomllib.loads(f"[kinds.leave.write_back]\n{WRITE_BACK}")["kinds"]
        await conn.execute(write_back_grants(kinds))
    async with connect(app_dsn) as conn:
        spec = capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.status = 'submitted'")
        await capture.install(conn, spec)


async def insert_leaves(dsn: str, count: int, *, start: int = 0) -> None:
    """``count`` submitted leave requests in one statement (the capture trigger fires)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO app.leave_request (applicant, days, reason, status) "
            "SELECT (%(applicants)s::text[])[1 + i %% %(n)s], 1 + (i %% 4), "
            "       'load ' || i, 'submitted' "
            "  FROM generate_series(%(start)s::int, %(end)s::int) AS i",
            {
                "applicants": list(APPLICANTS),
                "n": len(APPLICANTS),
                "start": start,
                "end": start + count - 1,
            },
        )


class Loader:
    """Inserts ``total`` leave requests in batches while faults happen; bounded in time.
    ``dsn`` is the application's."""

    def __init__(self, dsn: str, total: int, *, batch: int = 25, pause: float = 0.05) -> None:
        self.dsn = dsn
        self.total = total
        self.batch = batch
        self.pause = pause
        self.inserted = 0
        self.retries = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def insert(self, start: int, n: int) -> bool:
        """Insert one batch; False when it must be tried again."""
        try:
            await insert_leaves(self.dsn, n, start=start)
        except psycopg.OperationalError:  # the database is down for a moment
            return False
        return True

    async def _run(self) -> None:
        while self.inserted < self.total:
            n = min(self.batch, self.total - self.inserted)
            if not await self.insert(self.inserted, n):
                self.retries += 1
                await asyncio.sleep(0.2)
                continue
            self.inserted += n
            await asyncio.sleep(self.pause)

    async def wait(self, within: float) -> None:
        assert self.task is not None
        async with asyncio.timeout(within):
            await self.task

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


# --- configuration and daemon processes ---------------------------------------------------

CONFIG = """
[database]
dsn = "{dsn}"
pool_max_size = 6
connect_timeout = 5.0
statement_timeout = 10.0
[dingtalk]
app_key = "{app_key}"
app_secret = "{app_secret}"
api_url = "{sim}"
oapi_url = "{sim}"
timeout = 3.0
rate_per_second = 20
[events]
stream = {stream}
stream_silence_timeout = 3.0
[events.callback]
enabled = {callback}
token = "{token}"
aes_key = "{aes_key}"
max_age = 60.0
[http]
port = {http_port}
[pipeline]
batch_size = 25
concurrency = 8
lease_seconds = {lease}
outbox_poll_interval = 1.0
retry_base = 0.2
retry_cap = 2.0
max_attempts = 40
unknown_grace = 1.0
[polling]
quiet_after = 10
max_interval = 60
monthly_budget = 100000
failed_list_interval = 10
[log]
level = "INFO"
format = "json"
[kinds.leave]
process_code = "{process_code}"
originator = "applicant"
correlation_field = "{correlation}"
{kind_options}
[kinds.leave.form]
"请假类型" = "leave_type"
'["开始时间","结束时间"]' = {{ fields = ["start_date", "end_date"] }}
"天数" = "days"
"请假事由" = "reason"
[kinds.leave.write_back]
{write_back}
{extra}
"""

WRITE_BACK = """table = "app.leave_request"
key_column = "id"
[kinds.leave.write_back.columns]
approval_status = "status"
instance_id = "instance_id"
dingtalk_status = "dingtalk_status"
result = "result"
approver = "approver"
remark = "remark"
decided_at = "finished_at"
business_id = "business_id"
"""


def write_config(
    path: Path,
    *,
    dsn: str,
    sim_url: str,
    keys: Secrets,
    stream: bool = True,
    callback: bool = False,
    lease: float = 20.0,
    write_back: str = WRITE_BACK,
    http_port: int = 0,
    kind_options: str = "",
    extra: str = "",
) -> Path:
    """The daemons' configuration; ``kind_options`` go into ``[kinds.leave]``, ``extra``
    (whole tables) at the end."""
    path.write_text(
        CONFIG.format(
            dsn=dsn,
            app_key=APP_KEY,
            app_secret=keys.app_secret,
            sim=sim_url,
            stream=str(stream).lower(),
            callback=str(callback).lower(),
            token=keys.callback_token,
            aes_key=keys.aes_key,
            lease=lease,
            process_code=PROCESS_CODE,
            correlation=CORRELATION,
            write_back=write_back,
            http_port=http_port,
            kind_options=kind_options,
            extra=extra,
        ),
        encoding="utf-8",
    )
    return path


def syncd_command() -> str:
    """The installed console script next to this interpreter."""
    script = Path(sys.executable).parent / "syncd"
    assert script.exists(), f"syncd is not installed in {script.parent}"
    return str(script)


@dataclass
class Replica:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    started: float

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class Fleet:
    """Daemon processes: start, kill -9, stop with SIGTERM; every stderr kept in a file."""

    def __init__(self, config: Path, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_dir = log_dir
        self.env = env or {}
        self.replicas: dict[str, Replica] = {}
        self.generation = Counter[str]()
        self.kills = 0
        self.logs: list[Path] = []

    async def start(self, name: str, *, ready: bool = True) -> Replica:
        assert name not in self.replicas or not self.replicas[name].alive
        self.generation[name] += 1
        log = self.log_dir / f"{name}-{self.generation[name]}.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env.update(self.env)
        env["SYNCD_REPLICA_NAME"] = name
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                syncd_command(),
                "--config",
                str(self.config),
                "--log-format",
                "json",
                "run",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        replica = Replica(name, process, log, time.monotonic())
        self.replicas[name] = replica
        if ready:
            await self.wait_ready(replica)
        return replica

    async def wait_ready(self, replica: Replica, within: float = 30.0) -> str:
        """The replica's HTTP base URL, once it logged that it serves (with a deadline)."""
        async with asyncio.timeout(within):
            while True:
                for entry in log_entries(replica.log):
                    if entry.get("action") == "http_listening":
                        return str(entry["url"])
                if not replica.alive:
                    raise AssertionError(f"{replica.name} exited: {tail(replica.log)}")
                await asyncio.sleep(0.05)

    async def kill(self, name: str) -> None:
        replica = self.replicas[name]
        replica.process.send_signal(signal.SIGKILL)
        await replica.process.wait()
        self.kills += 1

    async def stop(self, name: str, within: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        replica = self.replicas[name]
        if replica.alive:
            replica.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            return await replica.process.wait()

    async def stop_all(self) -> dict[str, int]:
        codes = {}
        for name, replica in self.replicas.items():
            if replica.alive:
                codes[name] = await self.stop(name)
        return codes

    async def kill_all(self) -> None:
        for replica in self.replicas.values():
            if replica.alive:
                replica.process.send_signal(signal.SIGKILL)
                await replica.process.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self.logs)


def log_entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def assert_no_secrets(text: str, values: Iterable[str]) -> None:
    for value in values:
        assert value not in text, f"a secret ({value[:4]}…) appears in the logs"


# --- a TCP proxy in front of PostgreSQL -------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:port to a target; can cut every connection, stall and delay."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.delay = 0.0
        self.cuts = 0
        self.stalls = 0
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut(count=False)
        self.flowing.set()
        await self._server.wait_closed()

    def dsn(self, dsn: str) -> str:
        return psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    def cut(self, *, count: bool = True) -> int:
        """Close every connection at once (both sides see a reset)."""
        links = list(self._links)
        for client, upstream in links:
            client.transport.abort()
            upstream.transport.abort()
        if count:
            self.cuts += 1
        return len(links)

    def stall(self) -> None:
        """Stop forwarding; connections stay open and bytes wait."""
        self.stalls += 1
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()


# --- waiting and checking ---------------------------------------------------------------


async def query(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(sql, params)
        return await cursor.fetchall() if cursor.description else []


async def progress(dsn: str) -> dict[str, int]:
    rows = await query(
        dsn,
        "SELECT 'outbox_open', count(*) FROM syncd.outbox WHERE consumed_at IS NULL "
        "UNION ALL SELECT 'settled', count(*) FROM syncd.approval "
        " WHERE (state IN ('approved', 'rejected', 'canceled') AND written_back_at IS NOT NULL) "
        "    OR state IN ('invalid', 'dead') "
        "UNION ALL SELECT 'approvals', count(*) FROM syncd.approval "
        "UNION ALL SELECT 'outbox', count(*) FROM syncd.outbox "
        "UNION ALL SELECT state, count(*) FROM syncd.approval GROUP BY state",
    )
    return {name: int(n) for name, n in rows}


async def wait_settled(dsn: str, expected: int, within: float) -> dict[str, int]:
    """Wait until ``expected`` outbox rows are in and every approval is settled."""
    seen: dict[str, int] = {}
    shown = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(psycopg.OperationalError):
                    seen = await progress(dsn)
                    if time.monotonic() - shown > 5:
                        shown = time.monotonic()
                        sys.stdout.write(f"progress {json.dumps(seen)}\n")
                    if (
                        seen.get("outbox") == expected
                        and seen.get("outbox_open") == 0
                        and seen.get("settled") == seen.get("approvals") == expected
                    ):
                        return seen
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"not settled in {within} s: {seen}") from None


async def submitting(dsn: str) -> int:
    rows = await query(dsn, "SELECT count(*) FROM syncd.approval WHERE state = 'submitting'")
    return int(rows[0][0])


@dataclass
class Report:
    """What a scenario measured; printed for docs/reliability.md."""

    scenario: str
    approvals: int = 0
    approved: int = 0
    rejected: int = 0
    parked: int = 0
    instances: int = 0
    kills: int = 0
    kills_submitting: int = 0
    adopted_after_loss: int = 0
    faults: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    latency_s: list[float] = field(default_factory=list)  # capture to write-back p50 p95 max
    invariants: str = "not checked"

    def emit(self) -> None:
        line = json.dumps({"fault_report": self.__dict__}, ensure_ascii=False, default=str)
        sys.stdout.write(line + "\n")
        out = os.environ.get("SYNCD_TEST_FAULTS_REPORT")
        if out:
            with open(out, "a", encoding="utf-8") as file:
                file.write(line + "\n")


Rows = list[tuple[Any, ...]]


async def check_invariants(
    dsn: str, sim: Simulator, report: Report, *, parked: dict[str, str] | None = None
) -> None:
    """The README's guarantees after a run: nothing lost, one instance, one write, no regression.

    ``parked`` maps business keys that must be parked to a fragment of their error;
    every other approval must be final and written back.
    """
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:

        async def rows(sql: str) -> Rows:
            return await (await conn.execute(sql)).fetchall()

        approvals = await _nothing_lost(rows, parked or {})
        _one_instance_each(sim, approvals)
        await _written_once(rows, approvals, sim)
        await _no_regression(rows)
        latency = await rows(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
            "       percentile_cont(0.95) WITHIN GROUP (ORDER BY s), max(s) "
            "  FROM (SELECT extract(epoch FROM written_back_at - captured_at)::float8 AS s "
            "          FROM syncd.approval WHERE written_back_at IS NOT NULL) t"
        )
        adopted = await rows(
            "SELECT count(DISTINCT e.approval_id) FROM syncd.approval_event e "
            " WHERE e.event_type = 'transition' AND e.from_state = 'unknown' "
            "   AND e.to_state = 'running'"
        )
    counts = Counter(r[1] for r in approvals.values())
    report.approvals = len(approvals)
    report.approved = counts["approved"]
    report.rejected = counts["rejected"]
    report.parked = counts["invalid"] + counts["dead"]
    report.instances = len(sim.instances(process_code=PROCESS_CODE))
    report.adopted_after_loss = int(adopted[0][0])
    report.latency_s = [round(v or 0.0, 1) for v in latency[0]]
    report.invariants = "hold"


async def _nothing_lost(
    rows: Callable[[str], Awaitable[Rows]], parked: dict[str, str]
) -> dict[str, tuple[Any, ...]]:
    """Every outbox row consumed into one approval, each final and written, or parked."""
    assert await rows("SELECT id FROM syncd.outbox WHERE consumed_at IS NULL") == []
    orphans = await rows(
        "SELECT o.id FROM syncd.outbox o LEFT JOIN syncd.approval a ON a.outbox_id = o.id "
        "WHERE a.id IS NULL"
    )
    assert orphans == [], f"outbox rows without an approval: {orphans[:10]}"
    approvals: dict[str, tuple[Any, ...]] = {}
    for row in await rows(
        "SELECT business_key, state, instance_id, written_back_at IS NOT NULL, "
        "       last_error_code, last_error_message FROM syncd.approval"
    ):
        assert row[0] not in approvals, f"two approvals for business key {row[0]}"
        approvals[row[0]] = row
    unsettled = [r for r in approvals.values() if r[1] not in FINAL + PARKED]
    assert unsettled == [], f"unsettled approvals: {unsettled[:10]}"
    for key, fragment in parked.items():
        state, message = approvals[key][1], approvals[key][5] or ""
        assert state in PARKED, f"{key} should be parked, is {state}"
        assert fragment in message, f"{key}: {fragment!r} not in {message!r}"
    wrong = [r for r in approvals.values() if (r[1] in PARKED) != (r[0] in parked)]
    assert wrong == [], f"good rows parked: {wrong[:10]}"
    unwritten = [r for r in approvals.values() if r[1] in FINAL and not r[3]]
    assert unwritten == [], f"final but not written back: {unwritten[:10]}"
    return approvals


def _one_instance_each(sim: Simulator, approvals: dict[str, tuple[Any, ...]]) -> None:
    """One DingTalk instance per approval, the one syncd recorded; none for parked rows."""
    instances: dict[str, list[str]] = {}
    for instance in sim.instances(process_code=PROCESS_CODE):
        value = next((f["value"] for f in instance.form if f.get("name") == CORRELATION), "")
        instances.setdefault(str(value), []).append(instance.instance_id)
    doubles = {k: v for k, v in instances.items() if len(v) > 1}
    assert doubles == {}, f"approvals with more than one instance: {list(doubles.items())[:5]}"
    for key, state, instance_id, *_ in approvals.values():
        made = instances.pop(f"syncd:leave/{key}/1", [])
        want = [instance_id] if state in FINAL else []
        assert made == want, f"{key} ({state}): syncd has {instance_id}, DingTalk {made}"
    assert instances == {}, f"instances no approval owns: {list(instances.items())[:5]}"


def dingtalk_record(sim: Simulator, instance_id: str) -> list[Any]:
    """What DingTalk records of an instance, as the write-back columns should hold it:
    status, result, approver, remark, finish time (to the minute), business id."""
    instance = sim.instance(instance_id)
    approver, remark = instance.last_decision()
    assert instance.finish_time is not None
    return [
        instance.status,
        instance.result or None,
        approver,
        remark,
        instance.finish_time.replace(second=0, microsecond=0),
        instance.business_id,
    ]


async def _written_once(
    rows: Callable[[str], Awaitable[Rows]], approvals: dict[str, tuple[Any, ...]], sim: Simulator
) -> None:
    """Every business row written exactly once, with the outcome its days call for, and
    every written column as DingTalk's record of the instance says."""
    business = await rows(
        "SELECT l.id::text, l.days, l.approval_status, l.instance_id, l.dingtalk_status, "
        "       l.result, l.approver, l.remark, l.decided_at, l.business_id, "
        "       (SELECT count(*) FROM app.writes w WHERE w.leave_id = l.id) "
        "  FROM app.leave_request l"
    )
    for key, days, status, instance_id, *written, writes in business:
        approval = approvals.get(key)
        if approval is None or approval[1] in PARKED:
            assert writes == 0 and status is None, f"row {key} written without an approval"
            continue
        want = expected_status(int(days))
        assert (status, writes) == (want, 1), f"row {key}: {status} x{writes}, want {want} x1"
        assert instance_id == approval[2]
        record = dingtalk_record(sim, instance_id)
        written[4] = written[4] and written[4].replace(second=0, microsecond=0)
        assert written == record, f"row {key}: written {written}, DingTalk says {record}"


async def _no_regression(rows: Callable[[str], Awaitable[Rows]]) -> None:
    """Nothing left a final state; nothing went back from running."""
    regressions = await rows(
        "SELECT approval_id, from_state, to_state FROM syncd.approval_event "
        " WHERE event_type = 'transition' AND ("
        "       from_state IN ('approved', 'rejected', 'canceled') "
        "    OR (from_state = 'running' AND to_state NOT IN ('approved', 'rejected', "
        "        'canceled')))"
    )
    assert regressions == [], f"state regressions: {regressions[:10]}"


@contextlib.asynccontextmanager
async def timed(report: Report) -> AsyncIterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.seconds = round(time.monotonic() - started, 1)


def rng(seed: int | None = None) -> random.Random:
    """The random source of fault moments; the seed is printed so a run can be repeated."""
    value = int(os.environ.get("SYNCD_TEST_FAULTS_SEED", seed if seed is not None else time.time()))
    sys.stdout.write(f"fault seed {value}\n")
    return random.Random(value)

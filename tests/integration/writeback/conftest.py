"""The business-target contract's rigs: one per implementation of ``BusinessTarget``.

A rig is an implementation with its business side: the application's row for a business
key, made and read as the application would, a count of the writes it saw, and a switch
that makes its writes fail. The suite (``test_target_contract.py``) runs once per entry
of :data:`RIGS`; another business database is one more rig class and one more entry.

syncd's side is the same for every rig: syncd's own PostgreSQL, its stores logged in as
``syncd_daemon``, the superuser arranging running approvals in syncd's tables and reading
what happened. The application's role owns the business schema and grants the daemon
what docs/security.md asks of its DBA.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db import capture, writeback
from syncd.db.apply_store import PostgresApplyStore
from syncd.db.connect import connect
from syncd.db.store import Conn
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.domain import PROGRESS_STATES, ApprovalRef, ApprovalState
from syncd.pipeline.writeback import WriteBackRetry
from syncd.ports import BusinessTarget
from syncd.settings_kinds import WriteBackSettings
from tests.integration.writeback.mysql_rig import PROCEDURE_SQL as MYSQL_PROCEDURE
from tests.integration.writeback.mysql_rig import MySQLRig
from tests.roles import installer_grants, write_back_grants

KIND = "request"
#: The business row's columns as every rig reads them back, from the outcome's fields.
COLUMNS = {
    "status": "status",
    "dingtalk_status": "dingtalk_status",
    "result": "result",
    "approver": "approver",
    "remark": "remark",
    "decided_at": "finished_at",
    "instance_id": "instance_id",
    "business_id": "business_id",
    "syncd_round": "round",
    "syncd_seq": "seq",
    "waiting_at": "current_node",
    "waiting_for": "pending_approvers",
    "problem": "reason",
    "link": "url",
    "pc_link": "pc_url",
    "mobile_link": "mobile_url",
    "changed_at": "state_changed_at",
    "comments": "comments",
    "last_comment": "last_comment",
}
STATUS = {
    "submitted": "SUBMITTED",
    "running": "IN_APPROVAL",
    "invalid": "NOT_SUBMITTED",
    "dead": "FAILED",
    "approved": "APPROVED",
    "rejected": "REJECTED",
    "canceled": "CANCELED",
}
#: The corp id syncd builds links with, where DingTalk gave none.
CORP = "dingcorp-contract"


class Rig(Protocol):
    """One implementation of ``BusinessTarget`` and the business side it writes."""

    #: The target's name, as errors and the history name it.
    name: str

    async def targets(self) -> Mapping[str, BusinessTarget[Conn]]:
        """The kind :data:`KIND`'s target, as the daemon builds it from its settings."""
        ...

    async def close(self) -> None:
        """Release what :meth:`targets` opened."""
        ...

    def add_row(self, key: int) -> None:
        """The application's row for ``key``, nothing written in it yet."""
        ...

    def remove_row(self, key: int) -> None: ...

    def row(self, key: int) -> dict[str, Any] | None:
        """The written columns (:data:`COLUMNS`) of ``key``'s row, or None without one."""
        ...

    def writes(self, key: int) -> list[tuple[int, str]]:
        """Every write the row took that stayed, in order: (round, status)."""
        ...

    def versions(self, key: int) -> list[tuple[int, int, str]]:
        """Every write the row took that stayed, in order: (round, seq, status)."""
        ...

    def refuse(self, reason: str | None) -> None:
        """Make every write fail with ``reason`` (after changing the row), or (``None``)
        succeed again."""
        ...

    def said(self, reason: str) -> str:
        """``reason`` as the business database's error message carries it."""
        ...

    async def capture(self, when: str, cancel_when: str) -> None:
        """Install syncd's capture triggers on the business table as the application
        does (``syncd capture add`` with these conditions over ``NEW``)."""
        ...

    def set_status(self, key: int, status: str) -> None:
        """The application sets the row's status itself."""
        ...

    def captured(self) -> list[tuple[str, str]]:
        """The outbox rows captures wrote: (business key, action)."""
        ...

    def comments(self, key: int) -> tuple[Any, str | None]:
        """``key``'s written comments (the JSON, parsed) and last comment."""
        ...


#: The business schema of the PostgreSQL rigs, made by the application's role. An audit
#: trigger counts the writes; a second one, after it, raises while ``biz.closed`` has a
#: row, so a refused write has already changed the row and counted itself.
BUSINESS_SQL = """
CREATE SCHEMA biz;
CREATE TABLE biz.request (
    id bigint PRIMARY KEY, status text, dingtalk_status text, result text, approver text,
    remark text, decided_at timestamptz, instance_id text, business_id text,
    syncd_round integer, syncd_seq bigint, waiting_at text, waiting_for text, problem text,
    link text, pc_link text, mobile_link text, changed_at timestamptz, comments jsonb,
    last_comment text);
CREATE TABLE biz.writes (n bigint GENERATED ALWAYS AS IDENTITY, id bigint, round integer,
                         status text, seq bigint);
CREATE TABLE biz.closed (reason text NOT NULL);
CREATE FUNCTION biz.count_write() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO biz.writes (id, round, status, seq)
    VALUES (NEW.id, NEW.syncd_round, NEW.status, NEW.syncd_seq);
    RETURN NULL;
END $$;
CREATE FUNCTION biz.refuse() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    why text := (SELECT reason FROM biz.closed LIMIT 1);
BEGIN
    IF why IS NOT NULL THEN
        RAISE EXCEPTION '%', why;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER a_count_write AFTER UPDATE ON biz.request
    FOR EACH ROW EXECUTE FUNCTION biz.count_write();
CREATE TRIGGER b_refuse AFTER UPDATE ON biz.request
    FOR EACH ROW EXECUTE FUNCTION biz.refuse();
"""

#: The application's procedure: the same columns from the outcome (its status mapped as
#: the table rig's status_map maps it), refusing a missing row.
PROCEDURE_SQL = """
CREATE PROCEDURE biz.record_outcome(business_key text, outcome jsonb) LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE biz.request
       SET status = CASE outcome->>'status' WHEN 'running' THEN 'IN_APPROVAL'
                                            WHEN 'invalid' THEN 'NOT_SUBMITTED'
                                            WHEN 'dead' THEN 'FAILED'
                                            ELSE upper(outcome->>'status') END,
           dingtalk_status = outcome->>'dingtalk_status',
           result = outcome->>'result', approver = outcome->>'approver',
           remark = outcome->>'remark', decided_at = (outcome->>'finished_at')::timestamptz,
           instance_id = outcome->>'instance_id', business_id = outcome->>'business_id',
           syncd_round = (outcome->>'round')::integer, syncd_seq = (outcome->>'seq')::bigint,
           waiting_at = outcome->>'current_node',
           waiting_for = (SELECT nullif(string_agg(a, ',' ORDER BY n), '')
                            FROM jsonb_array_elements_text(outcome->'pending_approvers')
                                 WITH ORDINALITY AS p (a, n)),
           problem = outcome->>'reason', link = outcome->>'url', pc_link = outcome->>'pc_url',
           mobile_link = outcome->>'mobile_url',
           changed_at = (outcome->>'state_changed_at')::timestamptz,
           comments = outcome->'comments', last_comment = outcome->>'last_comment'
     WHERE id = business_key::bigint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no request %', business_key;
    END IF;
END $$;
"""


SELECT_ROW = (
    "SELECT status, dingtalk_status, result, approver, remark, decided_at, instance_id, "
    "business_id, syncd_round, syncd_seq, waiting_at, waiting_for, problem, link, pc_link, "
    "mobile_link, changed_at FROM biz.request WHERE id = %s"
)


def run_sql(dsn: str, query: LiteralString, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


@dataclass
class PostgresRig:
    """A ``PostgresTableTarget`` or ``PostgresProcedureTarget`` in syncd's database."""

    admin: str  # the superuser, reading what was written
    app: str  # the application's role, owning the business schema
    daemon: str  # syncd_daemon
    write_back: dict[str, Any]
    procedure_sql: LiteralString = ""
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.write_back.get("procedure") or self.write_back["table"]
        with psycopg.connect(self.app, autocommit=True) as conn:
            conn.execute(BUSINESS_SQL)
            if self.procedure_sql:
                conn.execute(self.procedure_sql)
            conn.execute(write_back_grants({KIND: {"write_back": self.write_back}}))

    async def targets(self) -> Mapping[str, BusinessTarget[Conn]]:
        return writeback.build_sync(self.daemon, {KIND: WriteBackSettings(**self.write_back)})

    async def close(self) -> None:
        pass

    def add_row(self, key: int) -> None:
        run_sql(self.app, "INSERT INTO biz.request (id) VALUES (%s)", key)

    def remove_row(self, key: int) -> None:
        run_sql(self.app, "DELETE FROM biz.request WHERE id = %s", key)

    def row(self, key: int) -> dict[str, Any] | None:
        rows = run_sql(self.admin, SELECT_ROW, key)
        return rows[0] if rows else None

    def writes(self, key: int) -> list[tuple[int, str]]:
        return [(round_, status) for round_, _, status in self.versions(key)]

    def versions(self, key: int) -> list[tuple[int, int, str]]:
        query = "SELECT round, seq, status FROM biz.writes WHERE id = %s ORDER BY n"
        rows = run_sql(self.admin, query, key)
        return [(r["round"], r["seq"], r["status"]) for r in rows]

    def refuse(self, reason: str | None) -> None:
        run_sql(self.app, "DELETE FROM biz.closed")
        if reason is not None:
            run_sql(self.app, "INSERT INTO biz.closed VALUES (%s)", reason)

    def said(self, reason: str) -> str:
        return reason

    async def capture(self, when: str, cancel_when: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            role = conn.execute(
                "SELECT rolname FROM pg_roles r JOIN pg_namespace n ON n.nspowner = r.oid "
                "WHERE n.nspname = 'biz'"
            ).fetchone()
            assert role is not None
            conn.execute(installer_grants(role[0]))
        spec = capture.CaptureSpec(KIND, "biz.request", "id", when, cancel_when)
        async with connect(self.app) as conn:
            await capture.install(conn, spec)

    def set_status(self, key: int, status: str) -> None:
        run_sql(self.app, "UPDATE biz.request SET status = %s WHERE id = %s", status, key)

    def captured(self) -> list[tuple[str, str]]:
        rows = run_sql(self.admin, "SELECT business_key, action FROM syncd.outbox ORDER BY id")
        return [(r["business_key"], r["action"]) for r in rows]

    def comments(self, key: int) -> tuple[Any, str | None]:
        query = "SELECT comments, last_comment FROM biz.request WHERE id = %s"
        [row] = run_sql(self.admin, query, key)
        return row["comments"], row["last_comment"]


def _table(name: str) -> dict[str, Any]:
    return {
        "table": name,
        "key_column": "id",
        "columns": COLUMNS,
        "status_map": STATUS,
        "progress": True,
    }


def _postgres(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """The superuser's, the application's and syncd_daemon's DSNs of the test's database."""
    application = request.getfixturevalue("application")
    database, daemon = request.getfixturevalue("database"), request.getfixturevalue("daemon_dsn")
    return database, application.dsn, daemon


def postgres_table(request: pytest.FixtureRequest) -> Rig:
    return PostgresRig(*_postgres(request), _table("biz.request"))


def postgres_procedure(request: pytest.FixtureRequest) -> Rig:
    procedure = {"procedure": "biz.record_outcome", "progress": True}
    return PostgresRig(*_postgres(request), procedure, PROCEDURE_SQL)


def mysql_table(request: pytest.FixtureRequest) -> Rig:
    return MySQLRig(request.getfixturevalue("mysql_database"), _table("biz_request"))


def mysql_procedure(request: pytest.FixtureRequest) -> Rig:
    procedure = {"procedure": "biz_record_outcome", "progress": True}
    return MySQLRig(request.getfixturevalue("mysql_database"), procedure, MYSQL_PROCEDURE)


#: Every implementation the contract runs over: a rig from the test's fixtures (syncd's
#: PostgreSQL database is there for every rig; a MySQL rig adds a business database).
RIGS: dict[str, Callable[[pytest.FixtureRequest], Rig]] = {
    "postgres-table": postgres_table,
    "postgres-procedure": postgres_procedure,
    "mysql-table": mysql_table,
    "mysql-procedure": mysql_procedure,
}


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest) -> Rig:
    return RIGS[request.param](request)


_keys = itertools.count(1)


class SetClock:
    """A clock a test sets to any time (the write-back stage reads it)."""

    def __init__(self) -> None:
        self.at = NOW

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


@dataclass
class Syncd:
    """syncd's side: the stores of apply and of the write-back retry over ``rig``'s
    targets, a second replica's apply and write-back stores, the write-back stage of each
    (progress of every unfinished state, links built with :data:`CORP`), and the
    superuser arranging and reading syncd's tables."""

    admin: str
    apply: PostgresApplyStore
    replica: PostgresApplyStore
    writeback: PostgresWriteBackStore
    other_writeback: PostgresWriteBackStore
    clock: SetClock = field(default_factory=SetClock)

    def stage(self, store: PostgresWriteBackStore, max_attempts: int = 3) -> WriteBackRetry:
        shown = frozenset(PROGRESS_STATES)
        return WriteBackRetry(store, self.clock, max_attempts=max_attempts, progress={KIND: shown})

    async def progress(self, at: datetime, replicas: int = 1, max_attempts: int = 3) -> int:
        """One pass of the progress write-back at ``at`` (by ``replicas`` replicas at
        once); how many rounds were written or refused."""
        self.clock.at = at
        stores = [self.writeback, self.other_writeback][:replicas]
        done = await asyncio.gather(
            *(self.stage(store, max_attempts).write_progress() for store in stores)
        )
        return sum(done)

    def parked(self, key: int, round_: int, state: str, message: str) -> int:
        """A round of ``key`` parked (``invalid`` or ``dead``) with ``message``; its id."""
        [row] = run_sql(
            self.admin,
            "INSERT INTO syncd.approval (kind, business_key, round, state, last_error_code, "
            "last_error_message, updated_at) VALUES (%s, %s, %s, %s, 'bad_payload', %s, %s) "
            "RETURNING id",
            KIND,
            str(key),
            round_,
            state,
            message,
            NOW,
        )
        return int(row["id"])

    def progress_of(self, approval_id: int) -> dict[str, Any]:
        [row] = run_sql(
            self.admin,
            "SELECT progress_seq, progress_written_seq, progress_attempts, progress_error, "
            "progress_next_at, progress_written_at FROM syncd.approval WHERE id = %s",
            approval_id,
        )
        return row

    def running(self, key: int, round_: int = 1) -> ApprovalRef:
        """A running approval of business key ``key`` (round ``round_``)."""
        instance_id = f"inst-{key}-{round_}"
        [row] = run_sql(
            self.admin,
            "INSERT INTO syncd.approval (kind, business_key, round, state, instance_id, "
            "instance_created_at, submitted_at) "
            "VALUES (%s, %s, %s, 'running', %s, now(), now()) RETURNING id, instance_created_at",
            KIND,
            str(key),
            round_,
            instance_id,
        )
        return ApprovalRef(
            id=row["id"],
            kind=KIND,
            business_key=str(key),
            round=round_,
            state=ApprovalState.RUNNING,
            instance_id=instance_id,
            instance_created_at=row["instance_created_at"],
        )

    def event(self, approval: ApprovalRef) -> int:
        """An unprocessed final event of ``approval``'s instance in the inbox; its id."""
        payload = f'{{"processInstanceId": "{approval.instance_id}", "type": "finish"}}'
        [row] = run_sql(
            self.admin,
            "INSERT INTO syncd.inbox (dedup_key, channel, event_type, instance_id, payload) "
            "VALUES (%s, 'stream', 'bpms_instance_change', %s, %s::jsonb) RETURNING id",
            f"finish-{approval.id}",
            approval.instance_id,
            payload,
        )
        return int(row["id"])

    def processed(self, event_id: int) -> bool:
        query = "SELECT processed_at IS NOT NULL AS done FROM syncd.inbox WHERE id = %s"
        return bool(run_sql(self.admin, query, event_id)[0]["done"])

    def approval(self, approval_id: int) -> dict[str, Any]:
        [row] = run_sql(
            self.admin,
            "SELECT state, written_back_at, writeback_attempts, next_attempt_at, "
            "last_error_code, last_error_message FROM syncd.approval WHERE id = %s",
            approval_id,
        )
        return row

    def notes(self, approval_id: int) -> list[str]:
        rows = run_sql(
            self.admin,
            "SELECT message FROM syncd.approval_event WHERE approval_id = %s "
            "AND event_type = 'note' ORDER BY id",
            approval_id,
        )
        return [r["message"] for r in rows]

    def unwritten(self) -> set[int]:
        return {r["id"] for r in run_sql(self.admin, "SELECT id FROM syncd.unwritten")}

    async def retry(self, now: datetime) -> dict[int, str | None]:
        """One pass of the write-back retry at ``now``: the errors, by approval id."""
        claimed = await self.writeback.claim_unwritten(100, now, now, max_attempts=100)
        return {r.id: await self.writeback.write_back(r.id, now, now) for r in claimed}


@pytest.fixture
async def syncd(rig: Rig, database: str, daemon_dsn: str) -> AsyncIterator[Syncd]:
    targets = await rig.targets()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        daemon_dsn,
        min_size=1,
        max_size=4,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True)
    try:
        yield Syncd(
            database,
            PostgresApplyStore(pool, targets, actor="syncd", corp_id=CORP),
            PostgresApplyStore(pool, targets, actor="replica", corp_id=CORP),
            PostgresWriteBackStore(pool, targets, actor="syncd", corp_id=CORP),
            PostgresWriteBackStore(pool, targets, actor="replica", corp_id=CORP),
        )
    finally:
        await pool.close()
        await rig.close()


def new_key() -> int:
    """A business key no other example of the session has used."""
    return next(_keys)


NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

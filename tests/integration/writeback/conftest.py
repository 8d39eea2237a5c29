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

import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from syncd.db import writeback
from syncd.db.apply_store import PostgresApplyStore
from syncd.db.store import Conn
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.domain import ApprovalRef, ApprovalState
from syncd.ports import BusinessTarget
from syncd.settings_kinds import WriteBackSettings
from tests.roles import write_back_grants

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
}
STATUS = {"approved": "APPROVED", "rejected": "REJECTED", "canceled": "CANCELED"}


class Rig(Protocol):
    """One implementation of ``BusinessTarget`` and the business side it writes."""

    #: The target's name, as errors and the history name it.
    name: str

    def targets(self) -> Mapping[str, BusinessTarget[Conn]]:
        """The kind :data:`KIND`'s target, as the daemon builds it from its settings."""
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

    def refuse(self, reason: str | None) -> None:
        """Make every write fail with ``reason`` (after changing the row), or (``None``)
        succeed again."""
        ...


#: The business schema of the PostgreSQL rigs, made by the application's role. An audit
#: trigger counts the writes; a second one, after it, raises while ``biz.closed`` has a
#: row, so a refused write has already changed the row and counted itself.
BUSINESS_SQL = """
CREATE SCHEMA biz;
CREATE TABLE biz.request (
    id bigint PRIMARY KEY, status text, dingtalk_status text, result text, approver text,
    remark text, decided_at timestamptz, instance_id text, business_id text,
    syncd_round integer);
CREATE TABLE biz.writes (n bigint GENERATED ALWAYS AS IDENTITY, id bigint, round integer,
                         status text);
CREATE TABLE biz.closed (reason text NOT NULL);
CREATE FUNCTION biz.count_write() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO biz.writes (id, round, status) VALUES (NEW.id, NEW.syncd_round, NEW.status);
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

#: The application's procedure: the same columns from the outcome, refusing a missing row.
PROCEDURE_SQL = """
CREATE PROCEDURE biz.record_outcome(business_key text, outcome jsonb) LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE biz.request
       SET status = upper(outcome->>'status'), dingtalk_status = outcome->>'dingtalk_status',
           result = outcome->>'result', approver = outcome->>'approver',
           remark = outcome->>'remark', decided_at = (outcome->>'finished_at')::timestamptz,
           instance_id = outcome->>'instance_id', business_id = outcome->>'business_id',
           syncd_round = (outcome->>'round')::integer
     WHERE id = business_key::bigint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no request %', business_key;
    END IF;
END $$;
"""


SELECT_ROW = (
    "SELECT status, dingtalk_status, result, approver, remark, decided_at, instance_id, "
    "business_id, syncd_round FROM biz.request WHERE id = %s"
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

    def targets(self) -> Mapping[str, BusinessTarget[Conn]]:
        return writeback.build_sync(self.daemon, {KIND: WriteBackSettings(**self.write_back)})

    def add_row(self, key: int) -> None:
        run_sql(self.app, "INSERT INTO biz.request (id) VALUES (%s)", key)

    def remove_row(self, key: int) -> None:
        run_sql(self.app, "DELETE FROM biz.request WHERE id = %s", key)

    def row(self, key: int) -> dict[str, Any] | None:
        rows = run_sql(self.admin, SELECT_ROW, key)
        return rows[0] if rows else None

    def writes(self, key: int) -> list[tuple[int, str]]:
        query = "SELECT round, status FROM biz.writes WHERE id = %s ORDER BY n"
        rows = run_sql(self.admin, query, key)
        return [(r["round"], r["status"]) for r in rows]

    def refuse(self, reason: str | None) -> None:
        run_sql(self.app, "DELETE FROM biz.closed")
        if reason is not None:
            run_sql(self.app, "INSERT INTO biz.closed VALUES (%s)", reason)


def postgres_table(admin: str, app: str, daemon: str) -> Rig:
    table = {"table": "biz.request", "key_column": "id", "columns": COLUMNS, "status_map": STATUS}
    return PostgresRig(admin, app, daemon, table)


def postgres_procedure(admin: str, app: str, daemon: str) -> Rig:
    return PostgresRig(admin, app, daemon, {"procedure": "biz.record_outcome"}, PROCEDURE_SQL)


#: Every implementation the contract runs over: a rig from the superuser's, the
#: application's and syncd_daemon's DSNs of the test's database.
RIGS: dict[str, Callable[[str, str, str], Rig]] = {
    "postgres-table": postgres_table,
    "postgres-procedure": postgres_procedure,
}


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, database: str, application: Any, daemon_dsn: str) -> Rig:
    return RIGS[request.param](database, application.dsn, daemon_dsn)


_keys = itertools.count(1)


@dataclass
class Syncd:
    """syncd's side: the stores of apply and of the write-back retry over ``rig``'s
    targets, a second replica's apply store, and the superuser arranging and reading
    syncd's tables."""

    admin: str
    apply: PostgresApplyStore
    replica: PostgresApplyStore
    writeback: PostgresWriteBackStore

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
    targets = rig.targets()
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
            PostgresApplyStore(pool, targets, actor="syncd"),
            PostgresApplyStore(pool, targets, actor="replica"),
            PostgresWriteBackStore(pool, targets, actor="syncd"),
        )
    finally:
        await pool.close()


def new_key() -> int:
    """A business key no other example of the session has used."""
    return next(_keys)


NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

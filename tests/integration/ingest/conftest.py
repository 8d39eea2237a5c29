"""Outbox rows written by an application role, ingested by the daemon's role.

Both are ordinary roles: the daemon's is ``syncd_daemon`` from ``deploy/sql/roles.sql``
with the grants of ``deploy/sql/least_privilege.sql``; the application's is a member of
``syncd_application``, which may only INSERT into ``syncd.outbox`` (and use the schema).
Rows are written one statement each, in order, so the admin can read their ids back (the
application role cannot read the table).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncd.db.admin_store import open_pool
from syncd.db.ingest_store import PostgresIngestStore
from syncd.pipeline.ingest import Ingest
from syncd.ports import Observer
from syncd.settings_kinds import KindSettings
from syncd.testing import FakeClock
from tests.integration.pipeline.conftest import LEAVE_KIND

ROOT = Path(__file__).resolve().parents[3]
DEPLOY_SQL = ROOT / "deploy" / "sql"
WRITER = "syncd_outbox_writer"
PASSWORD = "syncd-test-password"

#: The demo's leave kind (originator from the payload's applicant, no department) and a
#: purchase-order kind: originator from the outbox column, department from the payload,
#: a running round superseded by a new one.
KINDS = {
    "leave": KindSettings(**LEAVE_KIND),
    "po": KindSettings(
        process_code="PROC-PO",
        dept_id={"field": "dept"},
        form={"金额": "amount", "说明": {"template": "{note} ({amount})"}},
        on_resubmit="supersede",
    ),
}

#: One outbox row as the application writes it: payload is SQL text cast to jsonb, or an
#: SQL expression (``expression=True``) for values only the server can build (huge,
#: deeply nested).
Row = dict[str, Any]


@dataclass
class Roles:
    admin: str
    app: str
    writer: str


def _role_dsn(dsn: str, user: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=user, password=PASSWORD)


@pytest.fixture
def roles(database: str) -> Iterator[Roles]:
    with psycopg.connect(database, autocommit=True) as conn:
        for script in ("roles.sql", "least_privilege.sql"):
            conn.execute((DEPLOY_SQL / script).read_text(encoding="utf-8"))
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
            f"'{WRITER}') THEN CREATE ROLE {WRITER} LOGIN NOSUPERUSER; END IF; END $$"
        )
        for role in ("syncd_daemon", WRITER):
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(PASSWORD)
                )
            )
        dbname = conn.info.dbname
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(dbname), sql.Identifier(WRITER)
        ))  # fmt: skip
        conn.execute(f"GRANT syncd_application TO {WRITER}")
    try:
        yield Roles(database, _role_dsn(database, "syncd_daemon"), _role_dsn(database, WRITER))
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY syncd_daemon, {WRITER}")


def write(dsn: str, rows: Sequence[Row]) -> list[bool]:
    """Insert ``rows`` as the application, one statement each; False where the database
    refused the insert itself (e.g. a ``request_id`` too long for its unique index)."""
    written = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for row in rows:
            payload = sql.SQL(row["payload"]) if row.get("expression") else sql.SQL("%s::jsonb")
            statement = sql.SQL(
                "INSERT INTO syncd.outbox (kind, business_key, action, payload, originator, "
                "request_id) VALUES (%s, %s, %s, {}, %s, %s)"
            ).format(payload)
            params = [row["kind"], row["key"], row.get("action", "submit")]
            params += [] if row.get("expression") else [row["payload"]]
            params += [row.get("originator"), row.get("request_id")]
            try:
                conn.execute(statement, params)
            except (psycopg.errors.ProgramLimitExceeded, psycopg.errors.UniqueViolation):
                written.append(False)
                continue
            written.append(True)
    return written


async def ingest_all(
    dsn: str,
    *,
    observer: Observer | None = None,
    batch_size: int = 50,
    batches: int = 100,
    kinds: Mapping[str, KindSettings] = KINDS,
) -> int:
    """Run ingest as ``dsn``'s role until a batch handles nothing (every batch must
    commit: a failing one raises); returns the rows handled."""
    handled = 0
    async with open_pool(dsn) as pool:
        store = PostgresIngestStore(pool, actor="test")
        ingest = Ingest(store, kinds, FakeClock(), batch_size=batch_size, observer=observer)
        for _ in range(batches):
            if not (done := await ingest.run_once()):
                return handled
            handled += done
    raise AssertionError(f"ingest still had rows after {batches} batches")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def query(dsn: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(text, params or None)
        return cursor.fetchall() if cursor.description else []

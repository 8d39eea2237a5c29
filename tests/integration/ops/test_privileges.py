"""Least privilege: the roles of deploy/sql/roles.sql with the grants of
deploy/sql/least_privilege.sql are exactly what syncd needs.

- The daemon's grants are derived, not listed: PostgreSQL is asked which privileges each
  named query the daemon runs needs (EXPLAIN checks every table privilege of a statement,
  including those in CTEs and subqueries, without running it). With the shipped grants
  every statement passes; taking away any single granted privilege must refuse at least
  one statement, else the grant is one too many.
- SQL built in Python is listed by module below; of that, the daemon runs only LISTEN
  (no privilege) and the write-back (business tables: the application's DBA grants it,
  exercised end to end here).
- `syncd migrate --grants` runs as the schema owner, `syncd run` (a real ``Runner`` with
  the simulator) and the operator commands as the daemon role, the application as a
  member of ``syncd_application``: none of them a superuser.

Roles are cluster-wide, and every test database shares the server: roles.sql is
idempotent, and each test logs in through login roles of its own (``tests/roles.py``,
the ``logins`` fixture) whose session role is set to the shared role, so
``current_user`` is exactly ``syncd_owner`` or ``syncd_daemon``, and objects the owner
creates belong to ``syncd_owner``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from syncd.app import App
from syncd.cli import main
from syncd.db import migrations
from syncd.db.queries import QUERIES, parse_queries
from syncd.errors import MigrationError
from syncd.runner import Runner
from syncd.simulator import Simulator, World
from syncd.testing import FakeClock
from tests.integration.pipeline.conftest import APP_KEY, settings_for
from tests.roles import (
    APPLICATION,
    DAEMON,
    GRANTS_SQL,
    OWNER,
    ROOT,
    create_roles,
    grant_on_database,
    user_of,
)

#: Named queries the daemon role never runs, with who runs them. Every other query in
#: sql/queries.sql is the daemon's: `syncd run` and the operator commands (status, show,
#: retry, replay, cancel, reconcile, resume) that use the same configuration.
NOT_THE_DAEMONS = {
    "create_migrations_table": "the owner: syncd migrate",
    "insert_applied_migration": "the owner: syncd migrate",
    "lock_migrations": "the owner: syncd migrate",
    "unlock_migrations": "the owner: syncd migrate",
    "select_table": "the owner: syncd capture",
    "select_columns": "the owner: syncd capture",
    "select_captures": "the owner: syncd capture list",
    "select_capture": "the owner: syncd capture",
    "upsert_capture": "the owner: syncd capture add",
    "delete_capture": "the owner: syncd capture remove",
    "select_demo_states": "syncd demo (its own embedded server)",
    "select_demo_latencies": "syncd demo (its own embedded server)",
    "select_demo_running_instances": "syncd demo (its own embedded server)",
}
#: The modules that run them.
NOT_THE_DAEMONS_MODULES = {
    "syncd/db/migrations.py",
    "syncd/db/capture.py",
    "syncd/db/capture_checks.py",
    "syncd/demo/stats.py",
}

#: Modules that build SQL in Python rather than naming a query, and what it is.
SQL_BUILT_IN_PYTHON = {
    "syncd/db/listen.py": "LISTEN: needs no privilege",
    "syncd/db/writeback.py": "UPDATE or CALL on a business table: granted by its DBA",
    "syncd/db/attachment_in_store.py": "INSERT into a kind's attachments_back table: its DBA",
    "syncd/db/file_table.py": "SELECT on an attachments file table: granted by its DBA",
    "syncd/db/capture_ddl.py": "trigger DDL: the owner's `syncd capture add/remove`",
    "syncd/db/capture_checks.py": "a condition tried over no rows: the owner's `capture add`",
    "syncd/commands/devdb.py": "CREATE DATABASE on the trial server `syncd dev-db` started",
    "syncd/db/mysql/engine.py": "sql/mysql/queries.sql, in a MySQL business database (mysql.md)",
    "syncd/db/mysql/target.py": "UPDATE or CALL on a MySQL business table: granted by its DBA",
    "syncd/db/mysql/capture.py": "a condition prepared, never run; trigger DDL: the DBA's capture",
    "syncd/db/inbound_store.py": "INSERT or CALL on an inbound kind's table: granted by its DBA",
}
_BUILDS_SQL = re.compile(r"\bsql\.SQL\(|\bsa\.(?:update|insert|delete|select|text)\(")


def granted(text: str, role: str) -> set[tuple[str, str]]:
    """(table, privilege) pairs that ``GRANT ... ON syncd.t TO ...`` lines give ``role``."""
    pairs = set()
    pattern = r"^GRANT\s+([A-Z, ]+?)\s+ON\s+(?:TABLE\s+)?syncd\.(\w+)\s+TO\s+([\w, ]+);"
    for privileges, table, roles in re.findall(pattern, text, re.MULTILINE):
        if role in {r.strip() for r in roles.split(",")}:
            pairs |= {(table, p.strip()) for p in privileges.split(",")}
    return pairs


def daemon_queries() -> dict[str, str]:
    return {name: q for name, q in QUERIES.items() if name not in NOT_THE_DAEMONS}


def test_grants_file_parses_into_one_line_per_table():
    text = GRANTS_SQL.read_text(encoding="utf-8")
    pairs = granted(text, DAEMON)
    assert {t for t, _ in pairs} >= {"outbox", "approval", "inbox", "schema_migrations"}
    assert ("approval", "DELETE") not in pairs and ("schema_migrations", "INSERT") not in pairs
    assert granted(text, "syncd_application") == {("outbox", "INSERT")}
    tables = re.findall(r"^GRANT .* ON syncd\.(\w+) +TO syncd_daemon;$", text, re.MULTILINE)
    assert len(tables) == len(set(tables)), "one line per table and role"


def test_statements_outside_the_daemon_are_known():
    assert set(NOT_THE_DAEMONS) <= set(QUERIES)
    for name in NOT_THE_DAEMONS:
        users = {
            str(path.relative_to(ROOT))
            for path in (ROOT / "syncd").rglob("*.py")
            if f'"{name}"' in path.read_text(encoding="utf-8")
        }
        assert users <= NOT_THE_DAEMONS_MODULES, f"{name} is run by {users}: is it the daemon's?"
    building = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "syncd").rglob("*.py")
        if "simulator" not in path.parts and _BUILDS_SQL.search(path.read_text(encoding="utf-8"))
    }
    assert building == set(SQL_BUILT_IN_PYTHON), "new SQL built in Python: which role runs it?"


@dataclass
class Roles:
    admin: str
    owner: str
    daemon: str
    application: str


@pytest.fixture
def roles(empty_database: str, logins) -> Roles:
    """roles.sql by the superuser (twice: it is idempotent), then `syncd migrate --grants`
    by the owner (twice: grants are re-applied when nothing is pending)."""
    admin = empty_database
    create_roles(admin)
    create_roles(admin)
    found = Roles(
        admin,
        logins.new(admin, "owner", acts_as=OWNER),
        logins.new(admin, "daemon", acts_as=DAEMON),
        logins.new(admin, "app", member_of=[APPLICATION]),
    )
    assert main(["migrate", "--grants", "--dsn", found.owner]) == 0
    assert main(["migrate", "--grants", "--dsn", found.owner]) == 0
    return found


def _rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


def test_the_owner_owns_the_schema_and_the_daemon_nothing(roles):
    owners = _rows(
        roles.admin,
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'syncd' "
        "UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'syncd'",
    )
    assert owners == [("syncd_owner",)]
    [(user, superuser)] = _rows(
        roles.daemon, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    assert (user, superuser) == (DAEMON, False)
    # The catalog holds what the file says: the parse below is what PostgreSQL applied.
    in_catalog = _rows(
        roles.admin,
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = %s AND table_schema = 'syncd'",
        DAEMON,
    )
    assert set(in_catalog) == granted(GRANTS_SQL.read_text(encoding="utf-8"), DAEMON)


def _explain(conn: psycopg.Connection[Any], query: str) -> str | None:
    """None if PostgreSQL would run ``query`` for the current role, else why not."""
    # Parameters are NULLs the server types from their use; "now" needs a type, being
    # used where either a text or a timestamp would do.
    names = re.findall(r"%\((\w+)\)s", query)
    params = {p: datetime.now(UTC) if p == "now" else None for p in names}
    conn.execute("SAVEPOINT explain")
    try:
        conn.execute(f"EXPLAIN {query}", params or None)
    except psycopg.errors.InsufficientPrivilege as exc:
        conn.execute("ROLLBACK TO SAVEPOINT explain")
        return str(exc).splitlines()[0]
    conn.execute("RELEASE SAVEPOINT explain")
    return None


def test_the_daemon_is_granted_exactly_what_its_statements_need(roles):
    queries = daemon_queries()
    grants = sorted(granted(GRANTS_SQL.read_text(encoding="utf-8"), DAEMON))
    needed_by: dict[tuple[str, str], list[str]] = {}
    with psycopg.connect(roles.admin) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(DAEMON)))
        refused = {name: why for name, q in queries.items() if (why := _explain(conn, q))}
        assert refused == {}, "missing grants in deploy/sql/least_privilege.sql"
        conn.execute("RESET ROLE")
        for table, privilege in grants:
            conn.execute(
                sql.SQL("REVOKE {} ON {} FROM {}").format(
                    sql.SQL(privilege), sql.Identifier("syncd", table), sql.Identifier(DAEMON)
                )
            )
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(DAEMON)))
            needed_by[table, privilege] = [n for n, q in queries.items() if _explain(conn, q)]
            conn.rollback()
        # What the daemon must not do at all.
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(DAEMON)))
        for name in ("insert_applied_migration", "upsert_capture", "delete_capture"):
            assert _explain(conn, QUERIES[name]), f"the daemon may run {name}"
    unused = [pair for pair, users in needed_by.items() if not users]
    assert unused == [], "grants no daemon statement needs: remove them"
    assert needed_by["outbox", "DELETE"] == ["delete_old_outbox"]  # retention only


def test_migrate_grants_names_the_fix_when_a_role_is_missing(database, tmp_path):
    wrong = tmp_path / "grants.sql"
    wrong.write_text("GRANT SELECT ON syncd.outbox TO syncd_no_such_role;\n")
    with pytest.raises(MigrationError, match=r"grants\.sql failed: role .* does not exist"):
        asyncio.run(migrations.apply(database, grants=wrong))
    assert main(["migrate", "--dry-run", "--grants", str(wrong), "--dsn", database]) == 0


def _demo_tables() -> str:
    """The demo application's business tables (app.leave_request, app.expense_claim)."""
    text = resources.files("syncd.demo").joinpath("app.sql").read_text(encoding="utf-8")
    return parse_queries(text)["create_demo_tables"]


def _application(admin: str, app: str) -> None:
    """The application's role makes its tables, so owns them (its DBA lets it create in
    the database), and grants the daemon what docs/security.md says."""
    grant_on_database(admin, "CREATE", user_of(app))
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute(_demo_tables())
        conn.execute(
            "GRANT USAGE ON SCHEMA app TO syncd_daemon;"
            "GRANT SELECT (id), UPDATE (approval_status, instance_id, decided_at) "
            "ON app.leave_request TO syncd_daemon"
        )


def _submit(app: str, days: int) -> int:
    """The application's request and its outbox row, in one transaction."""
    with psycopg.connect(app) as conn:
        [key] = conn.execute(
            "INSERT INTO app.leave_request "
            "(applicant, leave_type, start_date, end_date, days, reason, status) "
            "VALUES ('u1', '年假', '2026-01-10', '2026-01-11', %s, 'rest', 'submitted') "
            "RETURNING id",
            [days],
        ).fetchone() or [0]
        conn.execute(
            "INSERT INTO syncd.outbox (kind, business_key, payload, originator) "
            "SELECT 'leave', id::text, to_jsonb(r), applicant FROM app.leave_request r "
            "WHERE id = %s",
            [key],
        )
    return int(key)


def _refused(dsn: str, statement: str) -> bool:
    try:
        _rows(dsn, statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}


async def test_the_daemon_role_runs_the_pipeline_and_the_operator_commands(roles):
    _application(roles.admin, roles.application)
    approved, refused = _submit(roles.application, 2), _submit(roles.application, 8)
    canceled = _submit(roles.application, 12)
    clock = FakeClock()
    sim = Simulator(World.default(), clock=clock)
    settings = settings_for(roles.daemon, events={"stream": False, "callback": CALLBACK})
    # The real pacer: DingTalk call slots from syncd.rate_limit, as the daemon role.
    daemon = Runner(App(settings, clock=clock, transport=httpx.ASGITransport(app=sim.app)))
    async with daemon:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
        )
        sim.callbacks.set_client(http)
        sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
        await daemon.drain()
        [(refused_instance,)] = _rows(
            roles.daemon,
            "SELECT instance_id FROM syncd.approval WHERE business_key = %s",
            str(refused),
        )
        sim.refuse(refused_instance, remark="too long")
        with psycopg.connect(roles.application) as conn:  # the application withdraws one
            conn.execute(
                "INSERT INTO syncd.outbox (kind, business_key, action) "
                "VALUES ('leave', %s, 'cancel')",
                [str(canceled)],
            )
        await sim.advance(120)  # rules approve short requests; the cancel guard passes
        await daemon.drain()
        assert await daemon.purge() == 0 and await daemon.sweep() == 0
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "syncd_approvals" in metrics.text
        assert (await http.get("/readyz")).status_code == 200
        await http.aclose()
    statuses = _rows(roles.admin, "SELECT id, approval_status FROM app.leave_request ORDER BY id")
    assert statuses == [(approved, "APPROVED"), (refused, "REJECTED"), (canceled, "CANCELED")]
    assert _rows(roles.admin, "SELECT DISTINCT channel FROM syncd.inbox") == [("callback",)]
    for command in (["status"], ["show", "leave", str(refused)], ["resume"]):
        code = await asyncio.to_thread(main, [*command, "--dsn", roles.daemon])
        assert code == 0, command
    # Nothing beyond that: not the ledger, not the definitions, not an unmapped column.
    for statement in (
        "DELETE FROM syncd.approval",
        "UPDATE syncd.schema_migrations SET name = 'x'",
        "CREATE TABLE syncd.x (a int)",
        "CREATE TABLE public.x (a int)",  # PostgreSQL 13-14 allow it unless roles.sql revoked it
        "UPDATE app.leave_request SET status = 'x'",
        "SELECT reason FROM app.leave_request",
    ):
        assert _refused(roles.daemon, statement), statement
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await migrations.apply(roles.daemon)
    # The application writes outbox rows, and reads nothing of syncd's.
    for statement in ("SELECT * FROM syncd.outbox", "SELECT * FROM syncd.approval"):
        assert _refused(roles.application, statement), statement

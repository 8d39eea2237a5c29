"""Capture triggers, written to as a non-superuser application role that owns its tables.

Each test gets its own database and its own application role (the ``application``
fixture: roles are cluster-wide, so unique names, dropped afterwards). The role installs
its captures itself with only the grants docs/security.md tells a DBA to give, unless a
test says otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from syncd.cli import main
from syncd.db import capture, migrations
from syncd.db.connect import connect
from syncd.errors import CaptureError
from tests.roles import installer_grants

LEAVE = capture.CaptureSpec(
    kind="leave",
    table="app.leave_request",
    key="id",
    when="NEW.status = 'submitted'",
    cancel_when="NEW.status = 'withdrawn'",
)
ROLE = capture.CAPTURE_ROLE
_roles = itertools.count(1)


@dataclass(frozen=True)
class AppDb:
    """One database: ``admin`` is a superuser's DSN, ``app`` the application role's."""

    admin: str
    app: str
    role: str


@pytest.fixture
def app_role(database, application) -> AppDb:
    """The application's role of tests/conftest.py (no superuser, the grants of a role
    that runs capture add), with its own schema ``app``."""
    with psycopg.connect(application.dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
    return AppDb(database, application.dsn, application.role)


@pytest.fixture
def app_db(app_role: AppDb) -> AppDb:
    with psycopg.connect(app_role.app, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE app.leave_request (
                id serial PRIMARY KEY, applicant text NOT NULL, days int NOT NULL,
                status text NOT NULL DEFAULT 'draft', approval_status text
            );
            """
        )
    return app_role


def outbox(db: AppDb):
    with psycopg.connect(db.admin) as conn:
        return conn.execute(
            "SELECT kind, business_key, action, payload FROM syncd.outbox ORDER BY id"
        ).fetchall()


def write(db: AppDb, statement: str, params=None) -> None:
    """A business change, as the application role."""
    with psycopg.connect(db.app, autocommit=True) as conn:
        conn.execute(statement, params)


async def install(dsn: str, spec=LEAVE):
    async with connect(dsn) as conn:
        return await capture.install(conn, spec)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``syncd ...`` in-process; in a thread of its own, as it runs its own event loop."""
    with ThreadPoolExecutor(1) as pool:
        code = pool.submit(main, list(args)).result()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def capture_triggers(db: AppDb) -> list[str]:
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'syncd\\_capture\\_%' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def capture_functions(db: AppDb) -> list[str]:
    with psycopg.connect(db.admin) as conn:
        rows = conn.execute(
            "SELECT proname FROM pg_proc WHERE proname LIKE '%capture\\_%' "
            "AND proname <> 'capture_row' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


# --- what a capture does ----------------------------------------------------------------


async def test_insert_matching_condition_writes_outbox_row_with_payload(app_db):
    await install(app_db.app)
    write(
        app_db,
        "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')",
    )
    [(kind, key, action, payload)] = outbox(app_db)
    assert (kind, key, action) == ("leave", "1", "submit")
    assert payload == {
        "id": 1,
        "applicant": "u1",
        "days": 3,
        "status": "submitted",
        "approval_status": None,
    }


async def test_condition_false_writes_nothing(app_db):
    await install(app_db.app)
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    assert outbox(app_db) == []


async def test_update_fires_only_when_condition_becomes_true(app_db):
    await install(app_db.app)
    for statement in (
        "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)",
        "UPDATE app.leave_request SET status = 'submitted'",
        # syncd's own write-back into the same row must not submit again
        "UPDATE app.leave_request SET approval_status = 'approved'",
        "UPDATE app.leave_request SET status = 'withdrawn'",
        "UPDATE app.leave_request SET status = 'submitted'",
    ):
        write(app_db, statement)
    assert [(r[2]) for r in outbox(app_db)] == ["submit", "cancel", "submit"]


async def test_syncds_own_write_backs_are_never_captured(app_db):
    """A transaction marked as syncd's write-back (``syncd.writing_back = on``, as syncd's
    write-back transactions are) captures nothing, even where a condition becomes true;
    the mark ends with its transaction."""
    await install(app_db.app)
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    with psycopg.connect(app_db.app) as conn:
        conn.execute("SELECT pg_catalog.set_config('syncd.writing_back', 'on', true)")
        conn.execute("UPDATE app.leave_request SET status = 'submitted'")
        conn.execute("UPDATE app.leave_request SET status = 'withdrawn'")
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u2', 1, 'submitted')"
        )
        conn.commit()
        assert outbox(app_db) == []
        conn.execute("UPDATE app.leave_request SET status = 'submitted' WHERE applicant = 'u1'")
        conn.commit()
    assert [(r[1], r[2]) for r in outbox(app_db)] == [("1", "submit")]


async def test_one_change_that_submits_and_cancels_writes_submit_first(app_db):
    spec = capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.days > 1", "NEW.days > 2")
    await install(app_db.app, spec)
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 5)")
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u2', 0)")
    write(app_db, "UPDATE app.leave_request SET days = 9 WHERE applicant = 'u2'")
    assert [(r[1], r[2]) for r in outbox(app_db)] == [
        ("1", "submit"),
        ("1", "cancel"),
        ("2", "submit"),
        ("2", "cancel"),
    ]


async def test_rolled_back_business_change_leaves_no_outbox_row(app_db):
    await install(app_db.app)
    with psycopg.connect(app_db.app) as conn:
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')"
        )
        conn.rollback()
    assert outbox(app_db) == []


async def test_without_condition_every_insert_is_captured_and_updates_are_not(app_db):
    await install(app_db.app, capture.CaptureSpec("leave", "app.leave_request", "id"))
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    write(app_db, "UPDATE app.leave_request SET days = 4")
    assert len(outbox(app_db)) == 1
    assert capture_triggers(app_db) == ["syncd_capture_leave"]
    assert capture_functions(app_db) == []


async def test_rerunning_add_replaces_the_triggers_and_drops_unused_functions(app_db):
    await install(app_db.app)
    assert capture_triggers(app_db) == [
        "syncd_capture_leave",
        "syncd_capture_leave_cancel",
        "syncd_capture_leave_update",
        "syncd_capture_leave_update_cancel",
    ]
    await install(
        app_db.app, capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.days > 5")
    )
    write(
        app_db,
        "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')",
    )
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u2', 9)")
    assert [r[1] for r in outbox(app_db)] == ["2"]
    assert capture_triggers(app_db) == ["syncd_capture_leave", "syncd_capture_leave_update"]
    [when_function] = capture_functions(app_db)
    assert when_function.startswith("syncd_capture_leave_request_leave_")
    async with connect(app_db.app) as conn:
        [row] = await capture.list_captures(conn)
    assert row["when_sql"] == "NEW.days > 5" and row["present"] and not row["legacy"]


async def test_outbox_insert_notifies_listeners(app_db):
    await install(app_db.app)
    async with await psycopg.AsyncConnection.connect(app_db.admin, autocommit=True) as listener:
        await listener.execute("LISTEN syncd_outbox")
        write(
            app_db,
            "INSERT INTO app.leave_request (applicant, days, status) "
            "VALUES ('u1', 3, 'submitted'), ('u2', 1, 'submitted')",
        )
        async with asyncio.timeout(5):
            note = await anext(listener.notifies())
    assert note.channel == "syncd_outbox" and note.payload == ""


async def test_remove_drops_triggers_and_functions(app_db):
    await install(app_db.app)
    async with connect(app_db.app) as conn:
        await capture.remove(conn, "leave", "app.leave_request")
        await conn.commit()
        assert await capture.list_captures(conn) == []
    assert capture_triggers(app_db) == []
    assert capture_functions(app_db) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (capture.CaptureSpec("leave", "app.nope", "id"), "table 'app.nope' does not exist"),
        (capture.CaptureSpec("leave", "app.leave_request", "nope"), "column 'nope' does not"),
        (
            capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.nope = 1"),
            "--when 'NEW.nope = 1' is not a valid condition",
        ),
        (
            capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.status ="),
            "is not a valid condition: syntax error",
        ),
        (
            capture.CaptureSpec("leave", "app.leave_request", "id", "true; DROP TABLE x"),
            "is not a valid condition",
        ),
        (
            capture.CaptureSpec("leave", "app.leave_request", "id", "true) OR (true"),
            "",  # valid SQL: nothing to refuse, but it must stay one expression
        ),
        (
            capture.CaptureSpec("leave", "app.leave_request", "id", None, "NEW.days + 1"),
            "--cancel-when",
        ),
    ],
)
async def test_bad_capture_is_refused_and_changes_nothing(app_db, spec, message):
    if not message:
        await install(app_db.app, spec)
        write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
        assert len(outbox(app_db)) == 1
        return
    with pytest.raises(CaptureError, match=message.replace("(", r"\(")):
        await install(app_db.app, spec)
    with psycopg.connect(app_db.admin) as conn:
        assert conn.execute("SELECT count(*) FROM syncd.capture").fetchone() == (0,)
    assert capture_triggers(app_db) == [] and capture_functions(app_db) == []


async def test_plan_renders_reviewable_ddl_without_changing_anything(app_db):
    async with connect(app_db.app) as conn:
        _, ddl = await capture.plan(conn, LEAVE)
        await conn.rollback()
    assert 'CREATE TRIGGER "syncd_capture_leave"' in ddl
    assert "SET search_path = pg_catalog, pg_temp" in ddl
    assert "NEW.status = 'submitted'" in ddl
    assert 'ON "app"."leave_request"' in ddl
    assert "EXECUTE FUNCTION syncd.capture_row('leave', 'id', 'submit')" in ddl
    assert capture_functions(app_db) == [] and capture_triggers(app_db) == []


async def test_null_business_key_still_commits_the_business_change(app_db):
    write(app_db, "ALTER TABLE app.leave_request ADD COLUMN ref text")
    await install(app_db.app, capture.CaptureSpec("leave", "app.leave_request", "ref"))
    write(app_db, "INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    assert [r[1] for r in outbox(app_db)] == [""]


async def test_a_3000_character_key_does_not_fail_the_business_insert(app_db):
    write(app_db, "ALTER TABLE app.leave_request ADD COLUMN ref text")
    await install(app_db.app, capture.CaptureSpec("leave", "app.leave_request", "ref"))
    key = "长" * 1000 + "k" * 2000  # 3,000 characters, 5,000 bytes
    write(
        app_db, "INSERT INTO app.leave_request (applicant, days, ref) VALUES ('u1', 3, %s)", [key]
    )
    [(_, business_key, _, payload)] = outbox(app_db)
    assert business_key == key and payload["ref"] == key


async def test_one_kind_can_be_captured_from_two_tables(app_db):
    write(app_db, "CREATE TABLE app.leave_request_archive (LIKE app.leave_request)")
    await install(app_db.app)
    await install(app_db.app, capture.CaptureSpec("leave", "app.leave_request_archive", "id"))
    async with connect(app_db.app) as conn:
        rows = await capture.list_captures(conn)
    assert [(r["table_name"], r["present"]) for r in rows] == [
        ("leave_request", True),
        ("leave_request_archive", True),
    ]


async def test_the_application_role_needs_no_grant_on_the_outbox(app_db):
    """Writers need nothing of syncd's: the trigger inserts as the capture role."""
    await install(app_db.app)
    with psycopg.connect(app_db.app) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO syncd.outbox (kind, business_key) VALUES ('leave', 'x')")
    write(
        app_db,
        "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u', 1, 'submitted')",
    )
    assert len(outbox(app_db)) == 1


async def test_other_writers_need_nothing_even_when_functions_default_to_private(app_db):
    """A second application role writes the table: no grant of syncd's, and the owner's
    default privileges revoking EXECUTE from PUBLIC do not reach the condition functions."""
    writer = f"{app_db.role}_w"
    with psycopg.connect(app_db.admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{writer}" LOGIN')
    write(
        app_db,
        "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;"
        f'GRANT USAGE ON SCHEMA app TO "{writer}";'
        f'GRANT INSERT, UPDATE, SELECT ON app.leave_request TO "{writer}";'
        f'GRANT USAGE ON SEQUENCE app.leave_request_id_seq TO "{writer}"',
    )
    try:
        await install(app_db.app)
        as_writer = AppDb(
            app_db.admin, psycopg.conninfo.make_conninfo(app_db.app, user=writer), writer
        )
        write(as_writer, "INSERT INTO app.leave_request (applicant, days) VALUES ('w', 1)")
        write(as_writer, "UPDATE app.leave_request SET status = 'submitted'")
        assert [(r[1], r[2]) for r in outbox(app_db)] == [("1", "submit")]
    finally:
        with psycopg.connect(app_db.admin, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{writer}"; DROP ROLE "{writer}"')


# --- conditions look names up the way they run ------------------------------------------


async def test_unqualified_table_in_condition_is_refused_at_add(app_db, capsys):
    write(
        app_db,
        "CREATE TABLE app.approvers (name text); INSERT INTO app.approvers VALUES ('u1');"
        f'ALTER ROLE "{app_db.role}" SET search_path = app, public',
    )
    unqualified = "EXISTS (SELECT 1 FROM approvers a WHERE a.name = NEW.applicant)"
    code, _, err = cli(
        capsys, "capture", "add", "--dsn", app_db.app, "--kind", "leave",
        "--table", "leave_request", "--key", "id", "--when", unqualified,
    )  # fmt: skip
    assert code == 2
    assert 'relation "approvers" does not exist' in err
    assert "search_path = pg_catalog, pg_temp" in err and "app.approvers" in err
    assert capture_triggers(app_db) == []
    # Qualified, it is accepted, and runs under the writer's own search_path too.
    qualified = unqualified.replace("FROM approvers", "FROM app.approvers")
    await install(app_db.app, capture.CaptureSpec("leave", "app.leave_request", "id", qualified))
    write(app_db, "INSERT INTO leave_request (applicant, days) VALUES ('u1', 1), ('u2', 1)")
    assert [r[1] for r in outbox(app_db)] == ["1"]


async def test_missing_installer_grants_are_named_with_the_fix(app_db, capsys):
    with psycopg.connect(app_db.admin, autocommit=True) as conn:
        conn.execute(f'REVOKE EXECUTE ON FUNCTION syncd.capture_row() FROM "{app_db.role}"')
        conn.execute(f'REVOKE ALL ON syncd.capture FROM "{app_db.role}"')
    code, _, err = cli(
        capsys, "capture", "add", "--dsn", app_db.app, "--kind", "leave",
        "--table", "app.leave_request", "--key", "id",
    )  # fmt: skip
    assert code == 2
    assert f"role {app_db.role} cannot install a capture on app.leave_request" in err
    assert f"GRANT EXECUTE ON FUNCTION syncd.capture_row() TO {app_db.role}" in err
    assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.capture TO {app_db.role}" in err


# --- the cast attack, and what the capture role could be made to do ---------------------

ESCALATE = """
CREATE TYPE app.mood AS ENUM ('calm', 'evil');
CREATE FUNCTION app.mood_json(app.mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    {attempt}
    RETURN pg_catalog.to_json(current_user::text);  -- who the cast ran as
END
$$;
CREATE CAST (app.mood AS json) WITH FUNCTION app.mood_json(app.mood);
ALTER TABLE app.leave_request ADD COLUMN mood app.mood NOT NULL DEFAULT 'evil';
"""
ALTER_ROLE = "EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', session_user);"
WRAPPED = f"BEGIN {ALTER_ROLE} EXCEPTION WHEN OTHERS THEN NULL; END;"


def is_superuser(db: AppDb, role: str) -> bool:
    with psycopg.connect(db.admin) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    assert row is not None
    return bool(row[0])


@pytest.mark.parametrize("installer", ["superuser", "table owner"])
async def test_cast_to_json_attack_runs_as_the_capture_role_and_gains_nothing(app_db, installer):
    """The tester's attack, wrapped so the insert goes on: the row arrives, no one is promoted."""
    write(app_db, ESCALATE.format(attempt=WRAPPED))
    await install(app_db.admin if installer == "superuser" else app_db.app)
    write(
        app_db,
        "INSERT INTO app.leave_request (applicant, days, status) VALUES ('m', 1, 'submitted')",
    )
    assert not is_superuser(app_db, app_db.role)
    [(_, key, _, payload)] = outbox(app_db)
    assert key == "1" and payload["mood"] == ROLE  # the cast ran as syncd_capture


async def test_cast_to_json_attack_unwrapped_fails_the_insert_cleanly(app_db):
    """Not caught, the refused ALTER ROLE aborts the attacker's own insert, and only that."""
    write(app_db, ESCALATE.format(attempt=ALTER_ROLE))
    await install(app_db.admin)
    # "permission denied to alter role" (16+) or "must be superuser to alter superusers"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="alter"):
        write(
            app_db,
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('m', 1, 'submitted')",
        )
    assert not is_superuser(app_db, app_db.role)
    assert outbox(app_db) == []
    with psycopg.connect(app_db.admin) as conn:
        assert conn.execute("SELECT count(*) FROM app.leave_request").fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM syncd.outbox",
        "UPDATE syncd.outbox SET consumed_at = now()",
        "SELECT * FROM syncd.approval",
        "INSERT INTO syncd.capture (kind, table_schema, table_name, trigger_name, key_column) "
        "VALUES ('k', 's', 't', 'x', 'id')",
        "SELECT * FROM app.leave_request",
        "CREATE TABLE syncd.stolen (x int)",
        "CREATE FUNCTION syncd.capture_row(x int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE ROLE syncd_test_stolen",
        "CREATE SCHEMA stolen",
        "ALTER ROLE {app} SUPERUSER",
        "GRANT syncd_capture TO {app}",
        "DROP TABLE app.leave_request",
    ],
)
async def test_the_capture_role_can_do_nothing_but_insert_outbox_rows(app_db, statement):
    """What an attacker's cast could try as syncd_capture: all of it is refused.

    (Switching roles is not in the list: PostgreSQL refuses SET ROLE inside a SECURITY
    DEFINER function, and the attacker's session could only switch to its own roles.)
    """
    await install(app_db.app)
    with psycopg.connect(app_db.admin) as conn:
        conn.execute(f"SET ROLE {ROLE}")
        conn.execute("INSERT INTO syncd.outbox (kind, business_key) VALUES ('k', '1')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.format(app=f'"{app_db.role}"'))


async def test_a_hijacked_capture_function_runs_nothing_of_the_attacker(app_db, capsys):
    """Its owner could make syncd.capture_row() SECURITY INVOKER with a hostile search_path.

    A superuser writing to a captured table then runs its body, every trigger on the
    outbox and the condition functions as itself: none of them may resolve a name in the
    attacker's schema. capture add notices and refuses until a DBA restores it.
    """
    await install(app_db.app)
    write(
        app_db,
        """
        CREATE TABLE app.hits (what text);
        GRANT INSERT ON app.hits TO PUBLIC;
        CREATE FUNCTION app.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql
            AS $$ INSERT INTO app.hits VALUES ('to_jsonb'); SELECT '{}'::jsonb $$;
        CREATE FUNCTION app.jsonb_extract_path_text(jsonb, VARIADIC text[]) RETURNS text
            LANGUAGE sql AS $$ INSERT INTO app.hits VALUES ('extract'); SELECT 'x' $$;
        CREATE FUNCTION app.pg_notify(text, text) RETURNS void LANGUAGE sql
            AS $$ INSERT INTO app.hits VALUES ('pg_notify') $$;
        CREATE FUNCTION app.texteq(text, text) RETURNS boolean LANGUAGE sql
            AS $$ INSERT INTO app.hits VALUES ('='); SELECT true $$;
        CREATE OPERATOR app.= (LEFTARG = text, RIGHTARG = text, FUNCTION = app.texteq);
        """,
    )
    with psycopg.connect(app_db.admin, autocommit=True) as conn:
        conn.execute(f"SET ROLE {ROLE}")  # all the hijack needs is to be the owner
        conn.execute(
            "ALTER FUNCTION syncd.capture_row() SECURITY INVOKER SET search_path = app, pg_catalog"
        )
    with psycopg.connect(app_db.admin, autocommit=True) as conn:  # a superuser writes
        conn.execute("SET search_path = app, pg_catalog")
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('s', 1, 'submitted')"
        )
        conn.execute("UPDATE app.leave_request SET status = 'withdrawn'")
        assert conn.execute("SELECT what FROM app.hits").fetchall() == []
    assert [(r[1], r[2]) for r in outbox(app_db)] == [("1", "submit"), ("1", "cancel")]
    code, _, err = cli(
        capsys, "capture", "add", "--dsn", app_db.app, "--kind", "leave",
        "--table", "app.leave_request", "--key", "id",
    )  # fmt: skip
    assert code == 2
    assert "syncd.capture_row() is not SECURITY DEFINER" in err
    assert "ALTER FUNCTION syncd.capture_row() SECURITY DEFINER" in err
    assert "does not pin search_path" in err


# --- capture add refuses to leave a definer with more rights than needed ----------------

_GROUP = f"syncd_test_group_{os.getpid()}"

TAMPERING = {
    "superuser": (
        f"ALTER ROLE {ROLE} SUPERUSER",
        f"ALTER ROLE {ROLE} NOSUPERUSER",
        f"{ROLE} has SUPERUSER",
        f"ALTER ROLE {ROLE} NOSUPERUSER",
    ),
    "login": (
        f"ALTER ROLE {ROLE} LOGIN",
        f"ALTER ROLE {ROLE} NOLOGIN",
        f"{ROLE} has LOGIN",
        f"ALTER ROLE {ROLE} NOLOGIN",
    ),
    "createrole": (
        f"ALTER ROLE {ROLE} CREATEROLE",
        f"ALTER ROLE {ROLE} NOCREATEROLE",
        f"{ROLE} has CREATEROLE",
        f"ALTER ROLE {ROLE} NOCREATEROLE",
    ),
    "member": (
        f"CREATE ROLE {_GROUP}; GRANT {_GROUP} TO {ROLE}",
        f"DROP ROLE {_GROUP}",
        f"{ROLE} is a member of {_GROUP}",
        f'REVOKE "{_GROUP}" FROM {ROLE}',
    ),
    "table grant": (
        f"GRANT SELECT, UPDATE ON syncd.approval TO {ROLE}",
        f"REVOKE ALL ON syncd.approval FROM {ROLE}",
        f"{ROLE} has SELECT, UPDATE on table syncd.approval",
        f"REVOKE SELECT, UPDATE ON table syncd.approval FROM {ROLE}",
    ),
    "outbox select": (
        f"GRANT SELECT ON syncd.outbox TO {ROLE}",
        f"REVOKE SELECT ON syncd.outbox FROM {ROLE}",
        f"{ROLE} has SELECT on table syncd.outbox",
        f"REVOKE SELECT ON table syncd.outbox FROM {ROLE}",
    ),
    "schema create": (
        f"GRANT CREATE ON SCHEMA syncd TO {ROLE}",
        f"REVOKE CREATE ON SCHEMA syncd FROM {ROLE}",
        f"{ROLE} has CREATE on schema syncd",
        f"REVOKE CREATE ON schema syncd FROM {ROLE}",
    ),
    "database": (
        "DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO syncd_capture', "
        "current_database()); END $$",
        "DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM syncd_capture', "
        "current_database()); END $$",
        f"{ROLE} has ALL on database",
        "REVOKE ALL ON database",
    ),
    "owns more": (
        f"CREATE TABLE public.capture_loot (x int);ALTER TABLE public.capture_loot OWNER TO {ROLE}",
        "DROP TABLE public.capture_loot",
        f"{ROLE} has OWNER on table public.capture_loot",
        "give table public.capture_loot another owner",
    ),
    "no insert": (
        f"REVOKE INSERT ON syncd.outbox FROM {ROLE}",
        f"GRANT INSERT ON syncd.outbox TO {ROLE}",
        f"{ROLE} lacks INSERT on table syncd.outbox",
        f"GRANT INSERT ON syncd.outbox TO {ROLE}",
    ),
    "owner": (
        "ALTER FUNCTION syncd.capture_row() OWNER TO CURRENT_USER",
        f"ALTER FUNCTION syncd.capture_row() OWNER TO {ROLE}",
        "syncd.capture_row() is owned by postgres (a superuser)",
        f"ALTER FUNCTION syncd.capture_row() OWNER TO {ROLE}",
    ),
    "public execute": (
        "GRANT EXECUTE ON FUNCTION syncd.capture_row() TO PUBLIC",
        "REVOKE EXECUTE ON FUNCTION syncd.capture_row() FROM PUBLIC",
        "PUBLIC may attach syncd.capture_row() to any table",
        "REVOKE EXECUTE ON FUNCTION syncd.capture_row() FROM PUBLIC",
    ),
    "search_path": (
        "ALTER FUNCTION syncd.capture_row() SET search_path = public, pg_catalog",
        "ALTER FUNCTION syncd.capture_row() SET search_path = pg_catalog, pg_temp",
        "does not pin search_path = pg_catalog, pg_temp alone",
        "ALTER FUNCTION syncd.capture_row() SET search_path = pg_catalog, pg_temp",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_add_refuses_while_the_definer_has_more_than_it_needs(app_db, capsys, case):
    tamper, restore, problem, fix = TAMPERING[case]
    args = ("capture", "add", "--dsn", app_db.app, "--kind", "leave", "--table",
            "app.leave_request", "--key", "id")  # fmt: skip
    with psycopg.connect(app_db.admin, autocommit=True) as conn:
        conn.execute(tamper)
        try:
            code, _, err = cli(capsys, *args)
        finally:
            conn.execute(restore)  # roles are cluster-wide: never leave one changed
    assert code == 2, err
    assert f"the role {ROLE} with nothing worth stealing" in err
    assert problem in err and fix in err
    assert capture_triggers(app_db) == []
    assert cli(capsys, *args)[0] == 0


# --- captures installed by an earlier syncd -----------------------------------------------

LEGACY_DDL = """
CREATE FUNCTION syncd.{when_fn}(new app.leave_request) RETURNS boolean
    LANGUAGE sql STABLE AS $c$SELECT (NEW.status = 'submitted')$c$;
CREATE FUNCTION syncd.{cancel_fn}(new app.leave_request) RETURNS boolean
    LANGUAGE sql STABLE AS $c$SELECT (false)$c$;
CREATE FUNCTION syncd.{fn}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $c$
BEGIN
    IF syncd.{when_fn}(NEW) IS TRUE THEN
        INSERT INTO syncd.outbox (kind, business_key, action, payload)
        VALUES ('leave', coalesce(NEW.id::text, ''), 'submit', to_jsonb(NEW));
    END IF;
    RETURN NULL;
END $c$;
CREATE TRIGGER syncd_capture_leave AFTER INSERT OR UPDATE ON app.leave_request
    FOR EACH ROW EXECUTE FUNCTION syncd.{fn}();
INSERT INTO syncd.capture (kind, table_schema, table_name, trigger_name, key_column, when_sql)
VALUES ('leave', 'app', 'leave_request', 'syncd_capture_leave', 'id', 'NEW.status = ''submitted''');
"""


async def test_migrate_rebuilds_legacy_captures_on_the_capture_role(app_db, capsys):
    target = capture.Target("app", "leave_request", "id")
    names = {
        "fn": capture.legacy_function_name("leave", target),
        "when_fn": capture.legacy_function_name("leave", target, "_when"),
        "cancel_fn": capture.legacy_function_name("leave", target, "_cancel"),
    }
    with psycopg.connect(app_db.admin, autocommit=True) as conn:
        conn.execute(LEGACY_DDL.format(**names))
    _, out, _ = cli(capsys, "capture", "list", "--dsn", app_db.admin)
    assert "(LEGACY: runs as the role that installed it; re-run capture add)" in out
    async with connect(app_db.admin, autocommit=True) as conn:
        report = await capture.rebuild_legacy(conn)
    assert report == ["capture leave on app.leave_request rebuilt on syncd.capture_row()"]
    with psycopg.connect(app_db.admin) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = ANY(%s)", [list(names.values())]
        ).fetchone()
    assert left == (0,)
    _, out, _ = cli(capsys, "capture", "list", "--dsn", app_db.admin)
    assert "LEGACY" not in out and "leave: app.leave_request key=id" in out
    write(
        app_db,
        "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u', 1, 'submitted')",
    )
    assert [r[1] for r in outbox(app_db)] == ["1"]


# --- unusual column types: the insert always commits, the outbox row carries the row ----

_NAME_CHARS = st.sampled_from(list("aZq_ 9\"'.-éÜ名字😀$"))
NAMES = st.text(_NAME_CHARS, min_size=1, max_size=12).filter(lambda n: len(n.encode()) <= 63)
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9, minutes=-30))]
)
MOODS = ["calm", "Ünïcode", "😀 smile", "it's"]


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pair(value: tuple[int, str]) -> str:
    """A composite literal: the text field double-quoted, with \\ and " escaped."""
    text = value[1].replace("\\", "\\\\").replace('"', '\\"')
    return f'({value[0]},"{text}")'


@dataclass(frozen=True)
class Kind:
    """A column type: its SQL, the SQL of one value (``%s`` for parameters), values."""

    type_sql: str
    value_sql: str
    values: st.SearchStrategy


KINDS = {
    "text": Kind("text", "%s", TEXT),
    "int": Kind("integer", "%s", st.integers(-(2**31), 2**31 - 1)),
    "float8": Kind("double precision", "%s", st.floats()),
    "numeric": Kind(
        "numeric",
        "%s",
        st.decimals(min_value=-(10**20), max_value=10**20, places=6) | st.just(Decimal("NaN")),
    ),
    "timestamptz": Kind("timestamptz", "%s", st.datetimes(timezones=ZONES)),
    "bytea": Kind("bytea", "%s", st.binary(max_size=30)),
    "jsonb": Kind("jsonb", "%s", JSON.map(Jsonb)),
    "bool": Kind("boolean", "%s", st.booleans()),
    "uuid": Kind("uuid", "%s", st.uuids()),
    "enum": Kind("{s}.mood", "CAST(%s AS {s}.mood)", st.sampled_from(MOODS)),
    "enum[]": Kind("{s}.mood[]", "CAST(%s AS {s}.mood[])", st.lists(st.sampled_from(MOODS))),
    "domain": Kind("{s}.posint", "CAST(%s AS {s}.posint)", st.integers(1, 2**31 - 1)),
    "int[]": Kind("integer[]", "%s", st.lists(st.none() | st.integers(-5, 5), max_size=4)),
    "text[]": Kind("text[]", "%s", st.lists(st.none() | TEXT, max_size=4)),
    "composite": Kind(
        "{s}.pair", "CAST(%s AS {s}.pair)", st.tuples(st.integers(-9, 9), TEXT).map(pair)
    ),
}
KEY_KINDS = {
    "text": TEXT,
    "long text": st.integers(2900, 3100).flatmap(
        lambda n: st.sampled_from("k长😀").map(lambda c: c * n)
    ),
    "int": st.integers(-(2**31), 2**31 - 1),
    "uuid": st.uuids(),
}
KEY_TYPES = {"text": "text", "long text": "text", "int": "integer", "uuid": "uuid"}
STATUS = "Stätus Of"  # a mixed-case, non-ASCII column the condition reads
_schemas = itertools.count(1)


@st.composite
def tables(draw):
    key_kind = draw(st.sampled_from(list(KEY_KINDS)))
    names = draw(
        st.lists(NAMES, min_size=2, max_size=8, unique=True).filter(lambda ns: STATUS not in ns)
    )
    key_name, table_name, *column_names = names
    kinds = [draw(st.sampled_from(list(KINDS))) for _ in column_names]
    values = [draw(st.none() | KINDS[k].values) for k in kinds]
    return {
        "table": table_name,
        "key": (key_name, key_kind, draw(st.none() | KEY_KINDS[key_kind])),
        "columns": list(zip(column_names, kinds, values, strict=True)),
        "generated": draw(st.booleans()),
    }


def _create_table(conn: psycopg.Connection, schema: str, spec) -> None:
    s = sql.Identifier(schema).as_string(conn)
    conn.execute(
        f"CREATE TYPE {s}.mood AS ENUM ({', '.join(map(quote, MOODS))});"
        f"CREATE DOMAIN {s}.posint AS integer CHECK (VALUE > 0);"
        f"CREATE TYPE {s}.pair AS (a integer, b text);"
    )
    key_name, key_kind, _ = spec["key"]
    columns = [sql.SQL("{} {}").format(sql.Identifier(key_name), sql.SQL(KEY_TYPES[key_kind]))]
    columns.append(sql.SQL("{} text NOT NULL").format(sql.Identifier(STATUS)))
    for name, kind, _ in spec["columns"]:
        columns.append(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(KINDS[kind].type_sql.format(s=s)))
        )
    if spec["generated"]:
        columns.append(
            sql.SQL("{} integer GENERATED ALWAYS AS (pg_catalog.length({})) STORED").format(
                sql.Identifier("Generated ✓"), sql.Identifier(STATUS)
            )
        )
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(schema, spec["table"]), sql.SQL(", ").join(columns)
        )
    )


def _insert(conn: psycopg.Connection, schema: str, spec, status: str) -> None:
    s = sql.Identifier(schema).as_string(conn)
    key_name, _, key_value = spec["key"]
    names = [key_name, STATUS] + [c[0] for c in spec["columns"]]
    values = [key_value, status] + [c[2] for c in spec["columns"]]
    exprs = ["%s", "%s"] + [KINDS[c[1]].value_sql.format(s=s) for c in spec["columns"]]
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(schema, spec["table"]),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ".join(exprs)),
        ),
        values,
    )


@pytest.mark.timeout(300)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=tables())
def test_capture_never_blocks_an_insert_and_carries_the_row(app_role, spec):
    schema = f"Prop Schéma {next(_schemas)}"
    with psycopg.connect(app_role.admin, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(app_role.role)
            )
        )
    try:
        with psycopg.connect(app_role.app, autocommit=True) as conn:
            _create_table(conn, schema, spec)
            table = sql.Identifier(schema, spec["table"]).as_string(conn)
            when = f"NEW.{sql.Identifier(STATUS).as_string(conn)} = 'go'"
            asyncio.run(
                install(app_role.app, capture.CaptureSpec("prop", table, spec["key"][0], when))
            )
            _insert(conn, schema, spec, "no")
            _insert(conn, schema, spec, "go")  # must not raise, whatever the values
            expected = conn.execute(
                sql.SQL("SELECT to_jsonb(t), to_jsonb(t) ->> %s FROM {} t WHERE {} = 'go'").format(
                    sql.Identifier(schema, spec["table"]), sql.Identifier(STATUS)
                ),
                [spec["key"][0]],
            ).fetchone()
        assert expected is not None
        [(kind, key, action, payload)] = outbox(app_role)
        assert (kind, action) == ("prop", "submit")
        assert payload == expected[0]
        assert key == (expected[1] or "")
        if spec["key"][1] in ("text", "long text"):
            assert key == (spec["key"][2] or "")
    finally:
        with psycopg.connect(app_role.admin, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            admin.execute("DELETE FROM syncd.outbox")
            admin.execute("DELETE FROM syncd.capture")


async def test_a_non_superuser_database_owner_migrates_and_its_application_captures(
    pg_server, template_database, empty_database
):
    """No superuser after the DBA's one-time steps: the owner migrates, the app captures.

    The capture role exists already (roles are cluster-wide; roles.sql, run for the
    template database, made it), so the DBA gives the owner membership in it, as
    docs/security.md says; the migration hands the function over.
    """
    owner, app = (f"syncd_test_{who}_{os.getpid()}_{next(_roles)}" for who in ("owner", "app"))
    database = psycopg.conninfo.conninfo_to_dict(empty_database)["dbname"]
    as_owner = psycopg.conninfo.make_conninfo(empty_database, user=owner)
    as_app = psycopg.conninfo.make_conninfo(empty_database, user=app)
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as dba:
        dba.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER; CREATE ROLE "{app}" LOGIN')
        dba.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
        dba.execute(f'GRANT {ROLE} TO "{owner}"')
    try:
        await migrations.apply(as_owner)
        with psycopg.connect(empty_database, autocommit=True) as dba:
            dba.execute(f'CREATE SCHEMA app AUTHORIZATION "{app}"')
        with psycopg.connect(as_owner, autocommit=True) as conn:
            conn.execute(installer_grants(app))  # the owner of syncd's objects grants them
            row = conn.execute(
                "SELECT pg_get_userbyid(proowner), prosecdef, "
                "has_schema_privilege('syncd_capture', 'syncd', 'CREATE') "
                "FROM pg_proc WHERE oid = 'syncd.capture_row()'::regprocedure"
            ).fetchone()
        assert row == (ROLE, True, False)
        with psycopg.connect(as_app, autocommit=True) as conn:
            conn.execute("CREATE TABLE app.t (id int, status text)")
        await install(as_app, capture.CaptureSpec("t", "app.t", "id", "NEW.status = 'go'"))
        with psycopg.connect(as_app, autocommit=True) as conn:
            conn.execute("INSERT INTO app.t VALUES (1, 'go'), (2, 'no')")
        with psycopg.connect(as_owner) as conn:
            rows = conn.execute("SELECT kind, business_key FROM syncd.outbox").fetchall()
        assert rows == [("t", "1")]
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as dba:
            dba.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [database],
            )
            dba.execute(f'DROP DATABASE "{database}"')
            dba.execute(f'DROP ROLE "{app}"; DROP ROLE "{owner}"')

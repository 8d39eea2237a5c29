from __future__ import annotations

import asyncio

import psycopg
import pytest

from syncd.db import capture
from syncd.db.connect import connect
from syncd.errors import CaptureError

LEAVE = capture.CaptureSpec(
    kind="leave",
    table="app.leave_request",
    key="id",
    when="NEW.status = 'submitted'",
    cancel_when="NEW.status = 'withdrawn'",
)


@pytest.fixture
def app_db(database):
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            """
            CREATE SCHEMA app;
            CREATE TABLE app.leave_request (
                id serial PRIMARY KEY, applicant text NOT NULL, days int NOT NULL,
                status text NOT NULL DEFAULT 'draft', approval_status text
            );
            """
        )
    return database


def outbox(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT kind, business_key, action, payload FROM syncd.outbox ORDER BY id"
        ).fetchall()


async def install(dsn, spec=LEAVE):
    async with connect(dsn) as conn:
        return await capture.install(conn, spec)


async def test_insert_matching_condition_writes_outbox_row_with_payload(app_db):
    await install(app_db)
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')"
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
    await install(app_db)
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    assert outbox(app_db) == []


async def test_update_fires_only_when_condition_becomes_true(app_db):
    await install(app_db)
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
        conn.execute("UPDATE app.leave_request SET status = 'submitted'")
        # syncd's own write-back into the same row must not submit again
        conn.execute("UPDATE app.leave_request SET approval_status = 'approved'")
        conn.execute("UPDATE app.leave_request SET status = 'withdrawn'")
        conn.execute("UPDATE app.leave_request SET status = 'submitted'")
    assert [(r[2]) for r in outbox(app_db)] == ["submit", "cancel", "submit"]


async def test_rolled_back_business_change_leaves_no_outbox_row(app_db):
    await install(app_db)
    with psycopg.connect(app_db) as conn:
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')"
        )
        conn.rollback()
    assert outbox(app_db) == []


async def test_without_condition_every_insert_is_captured_and_updates_are_not(app_db):
    await install(app_db, capture.CaptureSpec("leave", "app.leave_request", "id"))
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
        conn.execute("UPDATE app.leave_request SET days = 4")
    assert len(outbox(app_db)) == 1


async def test_rerunning_add_replaces_the_trigger(app_db):
    await install(app_db)
    await install(app_db, capture.CaptureSpec("leave", "app.leave_request", "id", "NEW.days > 5"))
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO app.leave_request (applicant, days, status) VALUES ('u1', 3, 'submitted')"
        )
        conn.execute("INSERT INTO app.leave_request (applicant, days) VALUES ('u2', 9)")
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'syncd_capture_%'"
        ).fetchone()
    assert [r[1] for r in outbox(app_db)] == ["2"]
    assert triggers == (1,)
    async with connect(app_db) as conn:
        [row] = await capture.list_captures(conn)
    assert row["when_sql"] == "NEW.days > 5" and row["present"]


async def test_outbox_insert_notifies_listeners(app_db):
    await install(app_db)
    async with await psycopg.AsyncConnection.connect(app_db, autocommit=True) as listener:
        await listener.execute("LISTEN syncd_outbox")
        with psycopg.connect(app_db, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO app.leave_request (applicant, days, status) "
                "VALUES ('u1', 3, 'submitted'), ('u2', 1, 'submitted')"
            )
        async with asyncio.timeout(5):
            note = await anext(listener.notifies())
    assert note.channel == "syncd_outbox" and note.payload == ""


async def test_remove_drops_trigger_and_functions(app_db):
    await install(app_db)
    async with connect(app_db) as conn:
        await capture.remove(conn, "leave", "app.leave_request")
        await conn.commit()
        assert await capture.list_captures(conn) == []
    with psycopg.connect(app_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'capture_%'"
        ).fetchone()
    assert left == (0,)


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
            capture.CaptureSpec("leave", "app.leave_request", "id", None, "NEW.days + 1"),
            "--cancel-when",
        ),
    ],
)
async def test_bad_capture_is_refused_and_changes_nothing(app_db, spec, message):
    with pytest.raises(CaptureError, match=message.replace("(", r"\(")):
        await install(app_db, spec)
    with psycopg.connect(app_db) as conn:
        assert conn.execute("SELECT count(*) FROM syncd.capture").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'syncd_capture_%'"
        ).fetchone() == (0,)


async def test_plan_renders_reviewable_ddl_without_changing_anything(app_db):
    async with connect(app_db) as conn:
        _, ddl = await capture.plan(conn, LEAVE)
        await conn.rollback()
    assert 'CREATE TRIGGER "syncd_capture_leave"' in ddl
    assert "NEW.status = 'submitted'" in ddl
    assert 'ON "app"."leave_request"' in ddl
    with psycopg.connect(app_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'capture_%'"
        ).fetchone() == (0,)


async def test_null_business_key_still_commits_the_business_change(app_db):
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE app.leave_request ADD COLUMN ref text")
    await install(app_db, capture.CaptureSpec("leave", "app.leave_request", "ref"))
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("INSERT INTO app.leave_request (applicant, days) VALUES ('u1', 3)")
    assert [r[1] for r in outbox(app_db)] == [""]


async def test_one_kind_can_be_captured_from_two_tables(app_db):
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.leave_request_archive (LIKE app.leave_request)")
    await install(app_db)
    await install(app_db, capture.CaptureSpec("leave", "app.leave_request_archive", "id"))
    async with connect(app_db) as conn:
        rows = await capture.list_captures(conn)
    assert [(r["table_name"], r["present"]) for r in rows] == [
        ("leave_request", True),
        ("leave_request_archive", True),
    ]

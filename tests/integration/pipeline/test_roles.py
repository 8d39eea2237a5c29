"""The pipeline's world acts as a deployment's roles, none of them a superuser: what every
other pipeline test relies on, checked once."""

from __future__ import annotations

import psycopg
import pytest

from syncd.db import migrations
from tests.roles import GRANTS_SQL, user_of

from .conftest import run_sql

WHO = "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = session_user"


async def test_the_daemon_and_the_application_act_as_their_roles(env):
    app = user_of(env.app_dsn)
    assert run_sql(env.daemon_dsn, WHO) == [("syncd_daemon", False)]
    assert run_sql(env.app_dsn, WHO) == [(app, False)]
    key = env.submit_leave(days=1)
    async with env.daemon() as daemon:
        await daemon.drain()
        await env.advance(120)
        await daemon.drain()
        sessions = env.sql(
            "SELECT DISTINCT usename::text FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'syncd%%'"
        )
    assert sessions == [(user_of(env.daemon_dsn),)]  # every connection of the daemon
    assert env.sql("SELECT id, approval_status FROM app.leave_request") == [(key, "APPROVED")]
    owners = env.sql(
        "SELECT DISTINCT n.nspname::text, pg_get_userbyid(c.relowner)::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('app', 'syncd') "
        "UNION SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace "
        "WHERE nspname IN ('app', 'syncd') "
        "UNION SELECT DISTINCT n.nspname::text, pg_get_userbyid(p.proowner)::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname LIKE 'syncd\\_capture%%'"
    )
    assert set(owners) == {("app", app), ("syncd", "syncd_owner")}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE app.leave_request SET status = 'draft'",  # not a mapped column
        "SELECT reason FROM app.leave_request",  # nor one it reads
        "INSERT INTO app.leave_request (applicant, leave_type, start_date, end_date, days) "
        "VALUES ('u1', '年假', '2026-01-10', '2026-01-11', 1)",
        "DELETE FROM syncd.approval",  # the history is kept: never DELETE
        "TRUNCATE syncd.outbox",
        "CREATE TABLE app.x (a int)",
    ],
)
async def test_the_daemon_may_not_do_what_its_grants_leave_out(env, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_sql(env.daemon_dsn, statement)


async def test_business_rows_are_written_as_the_application_only(env):
    with pytest.raises(AssertionError, match=r"env\.app_sql\(\)"):
        env.sql("UPDATE app.leave_request SET status = 'draft'")
    with pytest.raises(AssertionError, match=r"env\.app_sql\(\)"):
        env.sql("ALTER TABLE app.leave_request ADD COLUMN x int")
    assert env.sql("SELECT count(*) FROM app.leave_request") == [(0,)]


async def test_each_database_is_the_owners_as_migrated(owner_dsn):
    """The template was migrated and granted as syncd_owner: it finds nothing to apply and
    may apply the grants again, which only the owner of syncd's tables can."""
    assert run_sql(owner_dsn, WHO) == [("syncd_owner", False)]
    assert await migrations.apply(owner_dsn, grants=GRANTS_SQL) == []

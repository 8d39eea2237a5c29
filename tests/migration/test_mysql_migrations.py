"""syncd's footprint in a MySQL/MariaDB business database: sql/mysql/schema.sql and
sql/mysql/migrations/ make the same catalog, and ``syncd migrate --database`` applies
the migrations once, under a lock, refusing edited or unknown ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.db.migrations import Migration
from syncd.db.mysql import migrations
from syncd.db.mysql.engine import create_engine
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.queries import sql_dir
from syncd.errors import MigrationError
from tests.mysql import MySQLDb, mysql_run

CATALOG_QUERIES = {
    "tables": """
        SELECT table_name, engine, table_collation, table_comment
          FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1""",
    "columns": """
        SELECT table_name, column_name, ordinal_position, column_type, is_nullable,
               column_default, extra, character_set_name, collation_name, column_comment
          FROM information_schema.columns WHERE table_schema = DATABASE()
         ORDER BY table_name, ordinal_position""",
    "indexes": """
        SELECT table_name, index_name, non_unique, seq_in_index, column_name
          FROM information_schema.statistics WHERE table_schema = DATABASE()
         ORDER BY 1, 2, 4""",
    "constraints": """
        SELECT table_name, constraint_name, constraint_type
          FROM information_schema.table_constraints WHERE table_schema = DATABASE()
         ORDER BY 1, 2""",
    "triggers": """
        SELECT trigger_name, event_object_table, action_timing, event_manipulation,
               action_statement
          FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY 1""",
    "routines": """
        SELECT routine_name, routine_type, routine_definition
          FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY 1""",
}


def catalog(url: str) -> dict[str, list[dict[str, Any]]]:
    """The catalog, keys in lower case (MySQL 8 names information_schema's in upper)."""
    return {
        name: [{k.lower(): v for k, v in row.items()} for row in mysql_run(url, q)]
        for name, q in CATALOG_QUERIES.items()
    }


@pytest.fixture
async def engine(mysql_database: MySQLDb) -> AsyncIterator[Any]:
    engine = create_engine(MySQLDatabase("erp", mysql_database.app))
    yield engine
    await engine.dispose()


def run_script(url: str, text: str) -> None:
    for statement in migrations.split_statements(text):
        mysql_run(url, statement)


async def test_schema_sql_equals_all_migrations(engine, mysql_database, mysql_server):
    await migrations.apply(engine, "erp")
    from_migrations = catalog(mysql_database.app)
    other = f"{mysql_database.name}_s"
    mysql_run(mysql_server, f"CREATE DATABASE `{other}` CHARACTER SET latin1")
    try:
        url = mysql_database.admin.replace(f"/{mysql_database.name}", f"/{other}")
        run_script(url, (sql_dir() / "mysql" / "schema.sql").read_text(encoding="utf-8"))
        from_schema = catalog(url)
    finally:
        mysql_run(mysql_server, f"DROP DATABASE `{other}`")
    for part, rows in from_migrations.items():
        assert from_schema[part] == rows, f"schema.sql and migrations differ in {part}"
    tables = {r["table_name"] for r in from_migrations["tables"]}
    assert {"syncd_outbox", "syncd_writeback", "syncd_writeback_key"} <= tables
    assert {r["table_collation"] for r in from_migrations["tables"]} == {"utf8mb4_bin"}
    assert {r["engine"] for r in from_migrations["tables"]} == {"InnoDB"}


def test_migration_files_are_named_and_numbered():
    found = migrations.load()
    assert [m.version for m in found] == list(range(1, len(found) + 1))


async def test_apply_is_idempotent_and_dry_run_shows_the_pending(engine):
    before = await migrations.status(engine, "erp")
    assert not before.current and before.applied == []
    applied = await migrations.apply(engine, "erp")
    assert [m.version for m in applied] == [m.version for m in migrations.load()]
    assert await migrations.apply(engine, "erp") == []
    assert (await migrations.status(engine, "erp")).current


async def test_concurrent_runs_apply_each_migration_once(engine, mysql_database):
    results = await asyncio.gather(*(migrations.apply(engine, "erp") for _ in range(3)))
    versions = sorted(m.version for result in results for m in result)
    assert versions == [m.version for m in migrations.load()]
    rows = mysql_run(mysql_database.app, "SELECT version FROM syncd_schema_migrations")
    assert len(rows) == len(versions)


async def test_edited_or_unknown_migrations_are_refused(engine, mysql_database):
    await migrations.apply(engine, "erp")
    mysql_run(mysql_database.app, "UPDATE syncd_schema_migrations SET checksum = 'x'")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.status(engine, "erp")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.apply(engine, "erp")
    mysql_run(mysql_database.app, "DELETE FROM syncd_schema_migrations")
    mysql_run(
        mysql_database.app,
        "INSERT INTO syncd_schema_migrations (version, name, checksum) VALUES (999, 'x', 'y')",
    )
    with pytest.raises(MigrationError, match="run a newer syncd"):
        await migrations.status(engine, "erp")


async def test_a_failed_statement_is_named_and_nothing_is_recorded(
    engine, mysql_database, monkeypatch
):
    bad = Migration(1, "broken", "CREATE TABLE t1 (a INT);\nCREATE TABLE (;\n", "c")
    monkeypatch.setattr(migrations, "load", lambda: [bad])
    with pytest.raises(MigrationError, match=r"0001_broken failed at statement 2 \(CREATE TAB"):
        await migrations.apply(engine, "erp")
    assert mysql_run(mysql_database.app, "SELECT * FROM syncd_schema_migrations") == []


BODY = st.lists(
    st.sampled_from(["SELECT 1", "SET @a = 1", "BEGIN; END", "x;y", "'a' -- c"]), max_size=3
)


@given(statements=st.lists(st.tuples(BODY, st.booleans()), max_size=4))
def test_statements_split_as_the_mysql_client_splits_them(statements):
    """Statements end with ``;`` at a line's end; ``DELIMITER //`` lets bodies hold
    semicolons; comment and blank lines between statements are dropped."""
    lines, expected = [], []
    for body, delimited in statements:
        text = "\n".join(body) or "SELECT 2"
        if delimited:
            lines += ["DELIMITER //", f"{text} //", "DELIMITER ;"]
            expected.append(text)
        else:
            text = text.replace(";", ",")
            lines += ["-- a comment", "", f"{text};"]
            expected.append(text)
    assert migrations.split_statements("\n".join(lines)) == expected

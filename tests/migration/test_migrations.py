from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from syncd.db import migrations
from syncd.db.queries import sql_dir
from syncd.errors import MigrationError

CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity,
               identity_generation, ordinal_position
          FROM information_schema.columns WHERE table_schema = 'syncd'
         ORDER BY table_name, ordinal_position""",
    "constraints": """
        SELECT c.conrelid::regclass::text AS rel, c.conname, pg_get_constraintdef(c.oid)
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = 'syncd' ORDER BY 1, 2""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'syncd' ORDER BY 1""",
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'syncd' ORDER BY 1""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'syncd' ORDER BY 1""",
    "triggers": """
        SELECT t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'syncd' AND NOT t.tgisinternal ORDER BY 1""",
    "comments": """
        SELECT c.relname, obj_description(c.oid, 'pg_class')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'syncd' ORDER BY 1""",
}


def catalog(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(q).fetchall() for name, q in CATALOG_QUERIES.items()}


def test_schema_sql_equals_all_migrations(database, empty_database):
    from_migrations = catalog(database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute((sql_dir() / "schema.sql").read_text())
    from_schema = catalog(empty_database)
    for part, rows in from_migrations.items():
        assert from_schema[part] == rows, f"schema.sql and migrations differ in {part}"
    assert from_migrations["columns"], "the catalog query found nothing"


def test_migration_files_are_named_and_numbered():
    found = migrations.load_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(m.label == f"{m.version:04d}_{m.name}" for m in found)


def test_bad_migration_name_is_rejected(tmp_path):
    (tmp_path / "0001_Initial.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_snake_case"):
        migrations.load_migrations(tmp_path)


def test_gap_in_numbering_is_rejected(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="out of sequence"):
        migrations.load_migrations(tmp_path)


async def test_apply_is_idempotent(empty_database):
    before = await migrations.status(empty_database)
    assert not before.current and before.applied == []
    applied = await migrations.apply(empty_database)
    assert [m.version for m in applied] == [m.version for m in migrations.load_migrations()]
    assert await migrations.apply(empty_database) == []
    assert (await migrations.status(empty_database)).current


async def test_concurrent_runs_apply_each_migration_once(empty_database):
    results = await asyncio.gather(*(migrations.apply(empty_database) for _ in range(3)))
    versions = sorted(m.version for result in results for m in result)
    assert versions == [m.version for m in migrations.load_migrations()]
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version FROM syncd.schema_migrations").fetchall()
    assert len(rows) == len(versions)


async def test_edited_migration_is_refused(database):
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE syncd.schema_migrations SET checksum = 'x' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.status(database)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.apply(database)


async def test_unknown_newer_migration_is_refused(database):
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO syncd.schema_migrations (version, name, checksum) VALUES (999, 'x', 'y')"
        )
    with pytest.raises(MigrationError, match="run a newer syncd"):
        await migrations.status(database)

-- Named queries: every statement syncd runs, each under a `-- name --` header followed by
-- a one-line description. Parameters use psycopg's %(name)s style. Loaded by
-- syncd/db/queries.py; a test checks that every QUERIES["..."] in syncd/ exists here.

-- create_migrations_table --
-- Bootstrap the schema and the migration ledger before the first migration runs.
CREATE SCHEMA IF NOT EXISTS syncd;
CREATE TABLE IF NOT EXISTS syncd.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- migrations_table_exists --
-- Whether the migration ledger exists (a read-only check that creates nothing).
SELECT to_regclass('syncd.schema_migrations') IS NOT NULL AS present;

-- select_applied_migrations --
-- Applied migrations in version order.
SELECT version, name, checksum, applied_at
  FROM syncd.schema_migrations
 ORDER BY version;

-- insert_applied_migration --
-- Record one applied migration (same transaction as the migration itself).
INSERT INTO syncd.schema_migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);

-- lock_migrations --
-- Serialise migration runs across replicas (session advisory lock; key = 'syncd' in ASCII).
SELECT pg_advisory_lock(495891964772);

-- unlock_migrations --
-- Release the migration lock.
SELECT pg_advisory_unlock(495891964772);

-- select_table --
-- Resolve a user-given table name (search_path applies) to its schema, name and kind.
SELECT n.nspname AS table_schema, c.relname AS table_name, c.relkind AS relkind
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%(name)s);

-- select_columns --
-- Columns of a table with their SQL types, in table order.
SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type,
       NOT a.attnotnull AS nullable
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
   AND c.relname = %(table)s
   AND a.attnum > 0
   AND NOT a.attisdropped
 ORDER BY a.attnum;

-- select_captures --
-- Installed capture triggers, with whether the trigger still exists on its table.
SELECT c.trigger_name, c.kind, c.table_schema, c.table_name, c.key_column, c.when_sql,
       c.cancel_sql, c.installed_at,
       EXISTS (
           SELECT 1
             FROM pg_trigger t
             JOIN pg_class r ON r.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = r.relnamespace
            WHERE t.tgname = c.trigger_name
              AND n.nspname = c.table_schema
              AND r.relname = c.table_name
       ) AS present
  FROM syncd.capture c
 ORDER BY c.kind, c.table_schema, c.table_name;

-- select_capture --
-- One capture registration by kind and table.
SELECT trigger_name, kind, table_schema, table_name, key_column, when_sql, cancel_sql
  FROM syncd.capture
 WHERE kind = %(kind)s AND table_schema = %(schema)s AND table_name = %(table)s;

-- upsert_capture --
-- Register (or re-register) a capture trigger.
INSERT INTO syncd.capture
       (trigger_name, kind, table_schema, table_name, key_column, when_sql, cancel_sql)
VALUES (%(trigger_name)s, %(kind)s, %(schema)s, %(table)s, %(key_column)s, %(when_sql)s,
        %(cancel_sql)s)
ON CONFLICT (kind, table_schema, table_name) DO UPDATE
   SET trigger_name = EXCLUDED.trigger_name,
       key_column = EXCLUDED.key_column,
       when_sql = EXCLUDED.when_sql,
       cancel_sql = EXCLUDED.cancel_sql,
       installed_at = now();

-- delete_capture --
-- Forget a capture registration.
DELETE FROM syncd.capture
 WHERE kind = %(kind)s AND table_schema = %(schema)s AND table_name = %(table)s;

-- insert_inbox_event --
-- Store a received DingTalk event once; returns the new id, or nothing for a duplicate.
INSERT INTO syncd.inbox (dedup_key, channel, event_type, instance_id, payload)
VALUES (%(dedup_key)s, %(channel)s, %(event_type)s, %(instance_id)s, %(payload)s)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id;

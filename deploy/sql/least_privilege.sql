-- A least-privilege role for the syncd daemon (`syncd run`).
--
-- Run as the owner of the database (the role that ran `syncd migrate` and
-- `syncd capture add`), after every `syncd migrate`: it is idempotent and grants on the
-- tables the migrations created. Then set a password and grant the business columns:
--
--     psql "$ADMIN_DSN" -f deploy/sql/least_privilege.sql
--     psql "$ADMIN_DSN" -c "ALTER ROLE syncd_app PASSWORD '...'"
--     -- per write-back table: SELECT on the key column, UPDATE on the mapped columns only
--     psql "$ADMIN_DSN" -c 'GRANT USAGE ON SCHEMA app TO syncd_app'
--     psql "$ADMIN_DSN" -c 'GRANT SELECT (id), UPDATE (approval_status, instance_id)
--                              ON app.leave_request TO syncd_app'
--     -- a write-back procedure instead: GRANT EXECUTE ON PROCEDURE app.on_result(text, jsonb)
--
-- What the role can do: read and write syncd's own tables (never their definitions), read
-- the migration ledger, capture registry and views. What it cannot do: create or alter
-- anything, run migrations, install capture triggers, read or change any business column
-- it was not granted. The capture triggers are SECURITY DEFINER functions owned by the
-- role that installed them, so neither syncd_app nor the application needs a grant on
-- syncd.outbox for them; triggers of your own on a write-back table run as syncd_app
-- unless they are SECURITY DEFINER too.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'syncd_app') THEN
        CREATE ROLE syncd_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO syncd_app', current_database());
END
$$;

-- Nothing in public, nothing owned: it may not create objects anywhere.
REVOKE CREATE ON SCHEMA public FROM syncd_app;
GRANT USAGE ON SCHEMA syncd TO syncd_app;

-- The pipeline's tables: rows in, rows out (retention deletes from outbox and inbox).
GRANT SELECT, INSERT, UPDATE, DELETE ON
    syncd.outbox, syncd.approval, syncd.approval_event, syncd.task, syncd.inbox,
    syncd.control, syncd.usage, syncd.rate_limit
    TO syncd_app;

-- Read only: the ledger (`syncd run` checks the schema is current), captures, views.
GRANT SELECT ON
    syncd.schema_migrations, syncd.capture,
    syncd.backlog, syncd.stuck, syncd.parked, syncd.unwritten, syncd.summary
    TO syncd_app;

-- Outbox rows the database refused to store (migration 0005): ingest quarantines them,
-- `syncd retry --quarantined` sends them back.
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.outbox_quarantine TO syncd_app;
GRANT SELECT ON syncd.quarantined TO syncd_app;

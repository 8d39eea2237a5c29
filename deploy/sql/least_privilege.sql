-- What syncd's roles may do with its tables: the second half of its least-privilege
-- setup (deploy/sql/roles.sql, run once by a superuser, creates the roles). Run as the
-- owner of the schema syncd after every migration, which `syncd migrate --grants` does
-- (in one transaction, under the migration lock); by hand:
--
--     psql "$OWNER_DSN" -1 -v ON_ERROR_STOP=1 -f deploy/sql/least_privilege.sql
--
-- Idempotent and exact: it first takes back every table privilege of these roles in
-- syncd, then grants what each needs, so a privilege dropped from this file is revoked
-- on the next migrate. One line per table and role: a new table gets one line here.
--
-- syncd_daemon (`syncd run`, and the operator commands status, show, retry, replay,
-- cancel, reconcile, resume) gets exactly what sql/queries.sql makes it do:
-- tests/integration/ops/test_privileges.py asks PostgreSQL which of these privileges
-- each statement needs and fails on a missing or an unused one. It may not create,
-- alter or own anything, and has no DELETE where it deletes nothing: the only deletes
-- are retention (outbox, inbox) and lifting a pause (control). Views are for DBAs (the
-- owner); GRANT SELECT on them to a reporting role of your own if you wish.
--
-- Business tables are not syncd's to grant: the application's DBA gives syncd_daemon,
-- per write-back table, USAGE on its schema, SELECT on the key column and UPDATE on the
-- mapped columns only (or EXECUTE on the write-back procedure):
--
--     GRANT USAGE ON SCHEMA app TO syncd_daemon;
--     GRANT SELECT (id), UPDATE (approval_status, instance_id, decided_at)
--        ON app.leave_request TO syncd_daemon;
--
-- syncd_application (a group role for applications) may only insert outbox rows.
-- Capture triggers need no grant: they insert through syncd.capture_row(), a SECURITY
-- DEFINER function owned by syncd_capture.

GRANT USAGE ON SCHEMA syncd TO syncd_daemon, syncd_application;

REVOKE ALL ON ALL TABLES IN SCHEMA syncd FROM syncd_daemon, syncd_application;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA syncd FROM syncd_daemon, syncd_application;

GRANT SELECT, UPDATE, DELETE         ON syncd.outbox            TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.approval          TO syncd_daemon;
GRANT SELECT, INSERT                 ON syncd.approval_event    TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.task              TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.inbox             TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.control           TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.usage             TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.rate_limit        TO syncd_daemon;
GRANT SELECT                         ON syncd.schema_migrations TO syncd_daemon;

GRANT INSERT                         ON syncd.outbox            TO syncd_application;

-- The callback endpoint's shared replay guard: claim a push's signature (INSERT … ON
-- CONFLICT DO NOTHING RETURNING), forget expired ones (DELETE). Never updated.
GRANT SELECT, INSERT, DELETE         ON syncd.callback_replay   TO syncd_daemon;

-- Outbox rows the database refused to store (migration 0005): ingest quarantines them,
-- `syncd retry --quarantined` sends them back.
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.outbox_quarantine TO syncd_daemon;

-- The capture role (roles.sql creates it, migration 0006 gives it the capture function;
-- docs/security.md): these two grants are ALL it may have. Repeated here so running this
-- file restores them; `syncd capture add` refuses to install while it has anything more.
GRANT USAGE ON SCHEMA syncd TO syncd_capture;
GRANT INSERT ON syncd.outbox TO syncd_capture;

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
-- cancel, reconcile, resume, report) gets exactly what sql/queries.sql makes it do:
-- tests/integration/ops/test_privileges.py asks PostgreSQL which of these privileges
-- each statement needs and fails on a missing or an unused one. It may not create,
-- alter or own anything, and has no DELETE where it deletes nothing: the only deletes
-- are retention (outbox, inbox) and lifting a pause (control). Views are for DBAs (the
-- owner), except the statistics views that `syncd report` reads; GRANT SELECT on the
-- others to a reporting role of your own if you wish.
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
-- syncd_reader (a group role for reporting) may only read the statistics views.
-- Capture triggers need no grant: they insert through syncd.capture_row(), a SECURITY
-- DEFINER function owned by syncd_capture.

GRANT USAGE ON SCHEMA syncd TO syncd_daemon, syncd_application;

REVOKE ALL ON ALL TABLES IN SCHEMA syncd FROM syncd_daemon, syncd_application;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA syncd FROM syncd_daemon, syncd_application;

-- INSERT on the outbox: the relay from business databases (migration 0014).
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.outbox            TO syncd_daemon;
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

-- Statistics (migration 0009): `syncd report` reads the per-period views.
GRANT SELECT                         ON syncd.stats_by_period   TO syncd_daemon;
GRANT SELECT                         ON syncd.stats_by_node     TO syncd_daemon;
GRANT SELECT                         ON syncd.stats_by_approver TO syncd_daemon;

-- 0011: the DingTalk directory (full syncs, contact-change events, look-ups).
-- dingtalk_user's DELETE: departed users are forgotten after directory.forget_departed_after.
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.dingtalk_user       TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.dingtalk_department TO syncd_daemon;
GRANT SELECT, INSERT, DELETE         ON syncd.dingtalk_membership TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.directory_sync      TO syncd_daemon;

-- 0013: the by-mobile questions asked of DingTalk at submit.
GRANT SELECT, INSERT, UPDATE         ON syncd.directory_mobile_ask TO syncd_daemon;

-- The relay from business databases (migration 0014, docs/mysql.md): its position per
-- database (it inserts their syncd_outbox rows into syncd.outbox: granted above).
GRANT SELECT, INSERT, UPDATE         ON syncd.outbox_source     TO syncd_daemon;

-- 0016: comments applications asked for (ingest inserts them, the comment stage sends
-- them). syncd.comments, the DBAs' view of every comment, is not the daemon's to read.
GRANT SELECT, INSERT, UPDATE         ON syncd.comment           TO syncd_daemon;

-- syncd_reader, for reporting tools and people who read the statistics: every statistics
-- view (they show kinds, business keys and approvers' user ids, never a payload) and the
-- migration ledger (`syncd report` checks that the schema is current). Granted only where
-- roles.sql created it: a database set up before it existed keeps migrating until a
-- superuser runs roles.sql again.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'syncd_reader') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA syncd FROM syncd_reader;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA syncd FROM syncd_reader;
        GRANT USAGE ON SCHEMA syncd TO syncd_reader;
        GRANT SELECT ON syncd.stats_rounds, syncd.stats_tasks, syncd.stats_node_visits,
                        syncd.stats_by_period, syncd.stats_by_node, syncd.stats_by_approver,
                        syncd.schema_migrations
           TO syncd_reader;
    END IF;
END
$$;

-- 0017: files committed into DingTalk's approval space per approval round.
GRANT SELECT, INSERT                 ON syncd.attachment          TO syncd_daemon;

-- 0018: instances of inbound kinds waiting to be imported, and the backfill's cursor.
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.inbound_import      TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.inbound_backfill    TO syncd_daemon;
-- 0019: attachments back: the files of finished rounds fetched from DingTalk, and each
-- round's progress.
GRANT SELECT, INSERT                 ON syncd.attachment_in       TO syncd_daemon;
GRANT SELECT, INSERT, UPDATE         ON syncd.attachment_fetch    TO syncd_daemon;
-- 0019: files on outgoing comments, each committed file recorded by its comment.
GRANT SELECT, INSERT                 ON syncd.comment_file        TO syncd_daemon;
-- 0021: uploads begun and not yet recorded.
GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.upload_intent       TO syncd_daemon;

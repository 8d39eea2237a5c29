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
-- Installed capture triggers: whether the trigger still exists on its table, and whether
-- it is a legacy one (installed before migration 0006: not on syncd.capture_row()).
SELECT c.trigger_name, c.kind, c.table_schema, c.table_name, c.key_column, c.when_sql,
       c.cancel_sql, c.installed_at, t.oid IS NOT NULL AS present,
       t.oid IS NOT NULL AND p.proname IS DISTINCT FROM 'capture_row' AS legacy
  FROM syncd.capture c
  LEFT JOIN (pg_catalog.pg_trigger t
             JOIN pg_catalog.pg_class r ON r.oid = t.tgrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
             JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid)
    ON t.tgname = c.trigger_name AND n.nspname = c.table_schema AND r.relname = c.table_name
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

-- pin_search_path --
-- Look names up for the rest of this transaction as capture conditions do at run time.
SELECT pg_catalog.set_config('search_path', %(search_path)s, true);

-- select_capture_role --
-- The capture role's attributes and the roles it belongs to (all cluster-wide).
SELECT r.oid, r.rolsuper, r.rolcanlogin, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
       r.rolbypassrls,
       ARRAY(SELECT g.rolname::text
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
              WHERE m.member = r.oid
              ORDER BY 1) AS member_of
  FROM pg_catalog.pg_roles r
 WHERE r.rolname = %(role)s;

-- select_capture_function --
-- syncd.capture_row(): its owner, SECURITY DEFINER, its settings, whether PUBLIC may use it.
SELECT pg_catalog.pg_get_userbyid(p.proowner) AS owner, o.rolsuper AS owner_is_superuser,
       p.prosecdef, p.proconfig::text[] AS proconfig,
       EXISTS (SELECT 1
                 FROM pg_catalog.aclexplode(
                          COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_can_execute
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace s ON s.oid = p.pronamespace
  JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
 WHERE s.nspname = 'syncd' AND p.proname = 'capture_row' AND p.pronargs = 0;

-- select_capture_role_grants --
-- Everything the capture role owns or was granted, in this database and on shared objects
-- (pg_shdepend sees both): one row per object with the privileges (OWNER for ownership).
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
       CASE
           WHEN d.deptype = 'o' THEN ARRAY['OWNER']
           WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
           THEN ARRAY(SELECT a.privilege_type
                        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
                       WHERE c.oid = d.objid AND a.grantee = d.refobjid ORDER BY 1)
           WHEN d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
           THEN ARRAY(SELECT a.privilege_type
                        FROM pg_catalog.pg_namespace s, pg_catalog.aclexplode(s.nspacl) a
                       WHERE s.oid = d.objid AND a.grantee = d.refobjid ORDER BY 1)
           ELSE ARRAY['ALL']
       END::text[] AS privileges
  FROM pg_catalog.pg_shdepend d
 WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
   AND d.refobjid = %(role_oid)s
   AND d.dbid IN (0, (SELECT oid FROM pg_catalog.pg_database
                       WHERE datname = pg_catalog.current_database()))
 ORDER BY 1;

-- select_capture_installer --
-- What the current role may do towards installing a capture on a table.
SELECT current_user AS role,
       CASE WHEN pg_catalog.has_schema_privilege('syncd', 'USAGE')
            THEN pg_catalog.has_function_privilege('syncd.capture_row()', 'EXECUTE')
            ELSE false END AS can_attach,
       CASE WHEN pg_catalog.has_schema_privilege('syncd', 'USAGE')
            THEN pg_catalog.has_table_privilege('syncd.capture', 'SELECT')
                 AND pg_catalog.has_table_privilege('syncd.capture', 'INSERT')
                 AND pg_catalog.has_table_privilege('syncd.capture', 'UPDATE')
                 AND pg_catalog.has_table_privilege('syncd.capture', 'DELETE')
            ELSE false END AS can_register,
       pg_catalog.has_table_privilege(c.oid, 'TRIGGER') AS can_trigger,
       pg_catalog.has_schema_privilege(n.oid, 'CREATE') AS can_create
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s;

-- select_syncd_functions --
-- Which of these function names exist in the syncd schema.
SELECT p.proname
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'syncd' AND p.proname = ANY(%(names)s);

-- insert_inbox_events --
-- Store received DingTalk events, each once (the first of equal dedup keys wins); returns
-- the new rows (id, dedup key, time received). One statement for a whole burst of Stream
-- frames (a JSON array of objects). With lease_until the storing replica takes them for
-- its own apply at once (syncd/held.py): claimed once, leased until then.
INSERT INTO syncd.inbox (dedup_key, channel, event_type, instance_id, payload, attempts,
                         next_attempt_at)
SELECT e.dedup_key, e.channel, e.event_type, e.instance_id, e.payload,
       CASE WHEN %(lease_until)s::timestamptz IS NULL THEN 0 ELSE 1 END,
       %(lease_until)s::timestamptz
  FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb)
                  AS (dedup_key text, channel text, event_type text, instance_id text,
                      payload jsonb))
       WITH ORDINALITY AS e (dedup_key, channel, event_type, instance_id, payload, n)
 ORDER BY e.n
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key, received_at;

-- release_inbox_events --
-- A replica that stops gives back the leases of the events it stored for itself and did
-- not apply (syncd/held.py): due at once, for any replica, as if never claimed.
UPDATE syncd.inbox SET next_attempt_at = NULL, attempts = attempts - 1
 WHERE id = ANY(%(ids)s::bigint[]) AND processed_at IS NULL AND attempts = 1
   AND next_attempt_at IS NOT NULL
RETURNING id;

-- claim_callback_signature --
-- An HTTP callback push, accepted once across all replicas: claim its signature and, only
-- if no other push claimed it first, store its event (a JSON array of zero or one rows,
-- as in insert_inbox_events). One statement, so both commit or neither does: a push whose
-- event could not be stored leaves no claim behind, and DingTalk's retry is accepted.
WITH claim AS (
    INSERT INTO syncd.callback_replay (signature, expires_at)
    VALUES (%(signature)s, %(expires_at)s)
    ON CONFLICT (signature) DO NOTHING
    RETURNING signature
), stored AS (
    INSERT INTO syncd.inbox (dedup_key, channel, event_type, instance_id, payload)
    SELECT e.dedup_key, e.channel, e.event_type, e.instance_id, e.payload
      FROM claim,
           jsonb_to_recordset(%(events)s::jsonb)
           AS e (dedup_key text, channel text, event_type text, instance_id text, payload jsonb)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING dedup_key
)
SELECT EXISTS (SELECT 1 FROM claim) AS claimed, EXISTS (SELECT 1 FROM stored) AS stored;

-- delete_expired_callback_signatures --
-- Forget signatures whose push's timestamp is stale anyway (the endpoint refuses those).
DELETE FROM syncd.callback_replay WHERE expires_at < %(now)s;

-- try_lock_ingest --
-- Ingest runs on one replica at a time, which keeps per-business-key order (transaction lock).
SELECT pg_try_advisory_xact_lock(495891964773) AS locked;

-- claim_outbox_batch --
-- Unconsumed outbox rows in arrival order. The payload comes as JSON text when it has at most max_bytes bytes (payload_bytes says how many; one stored in more than max_stored bytes is not even turned into text).
SELECT o.id, o.created_at, o.kind, o.business_key, o.action, o.originator,
       o.source_database,
       CASE WHEN p.bytes <= %(max_bytes)s THEN p.text END AS payload,
       coalesce(p.bytes, p.stored) AS payload_bytes
  FROM syncd.outbox o
 CROSS JOIN LATERAL (
       SELECT t.text, octet_length(t.text) AS bytes, t.stored
         FROM (SELECT CASE WHEN pg_column_size(o.payload) <= %(max_stored)s
                           THEN o.payload::text END AS text,
                      pg_column_size(o.payload) AS stored
                OFFSET 0) t) p
 WHERE o.consumed_at IS NULL
 ORDER BY o.id
 LIMIT %(limit)s
   FOR UPDATE OF o SKIP LOCKED;

-- claim_outbox_ids --
-- Unconsumed outbox rows in arrival order, ids only (ingest row by row, after a batch failed).
SELECT id
  FROM syncd.outbox
 WHERE consumed_at IS NULL
 ORDER BY id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- select_outbox_row --
-- One claimed outbox row, its payload as claim_outbox_batch gives it.
SELECT o.id, o.created_at, o.kind, o.business_key, o.action, o.originator,
       o.source_database,
       CASE WHEN p.bytes <= %(max_bytes)s THEN p.text END AS payload,
       coalesce(p.bytes, p.stored) AS payload_bytes
  FROM syncd.outbox o
 CROSS JOIN LATERAL (
       SELECT t.text, octet_length(t.text) AS bytes, t.stored
         FROM (SELECT CASE WHEN pg_column_size(o.payload) <= %(max_stored)s
                           THEN o.payload::text END AS text,
                      pg_column_size(o.payload) AS stored
                OFFSET 0) t) p
 WHERE o.id = %(id)s;

-- quarantine_outbox_row --
-- Set aside an outbox row the database refused to store, with the error, and consume it (the row stays in syncd.outbox; retention leaves it).
WITH q AS (
    INSERT INTO syncd.outbox_quarantine
           (outbox_id, kind, business_key, error_code, error_message, quarantined_at)
    SELECT o.id, left(o.kind, 128), left(o.business_key, 512), %(error_code)s,
           %(error_message)s, %(now)s
      FROM syncd.outbox o
     WHERE o.id = %(id)s
    ON CONFLICT (outbox_id) DO UPDATE
       SET error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
           quarantined_at = EXCLUDED.quarantined_at
    RETURNING outbox_id, kind, business_key
)
UPDATE syncd.outbox o
   SET consumed_at = %(now)s
  FROM q
 WHERE o.id = q.outbox_id
RETURNING q.kind, q.business_key;

-- mark_outbox_consumed --
-- Mark claimed outbox rows consumed (same transaction as the approvals they made).
UPDATE syncd.outbox SET consumed_at = %(now)s WHERE id = ANY(%(ids)s);

-- select_latest_rounds --
-- The newest round of each business key (the keys as two arrays of kind and key), locked for
-- ingest's decisions.
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.cancel_requested_at
  FROM unnest(%(kinds)s::text[], %(business_keys)s::text[]) AS k (kind, business_key)
 CROSS JOIN LATERAL (
       SELECT id, kind, business_key, round, state, cancel_requested_at
         FROM syncd.approval
        WHERE kind = k.kind AND business_key = k.business_key
        ORDER BY round DESC
        LIMIT 1
          FOR UPDATE) a;

-- insert_approvals --
-- New approval rounds (a JSON array of objects, one per round, each naming its outbox row); returns their ids. The payload is copied from the outbox row as it is ('{}' when keep_payload is false), the capture time and the source database are the row's.
INSERT INTO syncd.approval
       (kind, business_key, round, outbox_id, state, payload, originator, dept_id,
        last_error_code, last_error_message, next_attempt_at, captured_at, created_at,
        updated_at, source_database)
SELECT r.kind, r.business_key, r.round, r.outbox_id, r.state,
       CASE WHEN r.keep_payload THEN o.payload ELSE '{}'::jsonb END, r.originator,
       r.dept_id, r.error_code, r.error_message, %(now)s, o.created_at, %(now)s, %(now)s,
       o.source_database
  FROM ROWS FROM (jsonb_to_recordset(%(rounds)s::jsonb)
                  AS (kind text, business_key text, round integer, outbox_id bigint,
                      state text, keep_payload boolean, originator text, dept_id bigint,
                      error_code text, error_message text))
       WITH ORDINALITY AS r (kind, business_key, round, outbox_id, state, keep_payload,
                             originator, dept_id, error_code, error_message, n)
  JOIN syncd.outbox o ON o.id = r.outbox_id
 ORDER BY r.n
RETURNING id, kind, business_key, round;

-- insert_approval_events --
-- Lines of approvals' history (transitions, DingTalk calls, notes), in the order given: one
-- statement for everything a transaction has to say (a JSON array of objects).
INSERT INTO syncd.approval_event
       (approval_id, at, event_type, from_state, to_state, endpoint, http_status, code,
        duration_ms, message, actor)
SELECT e.approval_id, %(at)s, e.event_type, e.from_state, e.to_state, e.endpoint,
       e.http_status, e.code, e.duration_ms, e.message, %(actor)s
  FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb)
                  AS (approval_id bigint, event_type text, from_state text, to_state text,
                      endpoint text, http_status integer, code text, duration_ms integer,
                      message text))
       WITH ORDINALITY AS e (approval_id, event_type, from_state, to_state, endpoint,
                             http_status, code, duration_ms, message, n)
 ORDER BY e.n;

-- request_cancels --
-- Ask for approvals to be canceled; the cancel stage acts on them.
UPDATE syncd.approval
   SET cancel_requested_at = coalesce(cancel_requested_at, %(now)s), updated_at = %(now)s
 WHERE id = ANY(%(ids)s::bigint[]);

-- claim_submit_batch --
-- Due pending approvals, skipping keys whose earlier round is still active; takes a lease.
WITH due AS (
    SELECT a.id, a.state
      FROM syncd.approval a
     WHERE a.state = 'pending'
       AND a.next_attempt_at <= %(now)s
       AND a.cancel_requested_at IS NULL
       AND NOT EXISTS (
           SELECT 1 FROM syncd.approval p
            WHERE p.kind = a.kind AND p.business_key = a.business_key AND p.round < a.round
              AND p.state IN ('pending', 'submitting', 'running', 'unknown'))
     ORDER BY a.next_attempt_at, a.id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.approval a
   SET state = 'submitting', attempts = a.attempts + 1, lease_owner = %(owner)s,
       lease_expires_at = %(lease_until)s, submitted_at = coalesce(a.submitted_at, %(now)s),
       updated_at = %(now)s
  FROM due
 WHERE a.id = due.id
RETURNING a.id, a.kind, a.business_key, a.round, a.payload, a.originator, a.dept_id,
          a.attempts, a.captured_at, due.state AS from_state;

-- record_intents --
-- What is about to be sent to DingTalk, committed before the creates (reconciling needs it),
-- for a batch of claimed approvals (a JSON array of objects): the form, the originator's
-- userId and the department; returns those whose lease is still the owner's, with the
-- userId recorded before (to note how the people were found once per round).
WITH i AS (
    SELECT * FROM jsonb_to_recordset(%(intents)s::jsonb)
           AS i (id bigint, process_code text, form_values jsonb, originator_user_id text,
                 dept_id bigint)
), prev AS (
    SELECT a.id, a.originator_user_id
      FROM syncd.approval a JOIN i ON i.id = a.id
     WHERE a.state = 'submitting' AND a.lease_owner = %(owner)s
       FOR UPDATE OF a
)
UPDATE syncd.approval a
   SET process_code = i.process_code, form_values = i.form_values,
       originator_user_id = coalesce(i.originator_user_id, a.originator_user_id),
       dept_id = coalesce(i.dept_id, a.dept_id), updated_at = %(now)s
  FROM i JOIN prev ON prev.id = i.id
 WHERE a.id = i.id
RETURNING a.id, prev.originator_user_id AS previous_user_id;

-- record_created --
-- DingTalk created these instances (a JSON array of objects, one per approval: creates
-- answered while another was being recorded are recorded together): the approvals run
-- (also adopts one found by reconciling). One statement: the transitions, the DingTalk
-- calls spent (each create's, in ``calls``) and the transitions in the history, the
-- metered calls in the monthly usage (contact reads are not metered). The calls are
-- recorded even when an approval had moved on (it is not returned): the instance exists
-- all the same. Returns the approvals that moved.
WITH c AS (
    SELECT * FROM jsonb_to_recordset(%(created)s::jsonb)
           AS (id bigint, instance_id text, process_code text, form_values jsonb,
               created_at timestamptz, now timestamptz, next_poll_at timestamptz,
               month date, message text, calls jsonb)
), prev AS (
    SELECT a.id, a.state FROM syncd.approval a JOIN c ON c.id = a.id
     WHERE a.state IN ('submitting', 'unknown') AND a.instance_id IS NULL
     ORDER BY a.id
       FOR UPDATE OF a
), moved AS (
    UPDATE syncd.approval a
       SET state = 'running', instance_id = c.instance_id, process_code = c.process_code,
           form_values = coalesce(c.form_values, a.form_values),
           instance_created_at = coalesce(c.created_at, c.now),
           lease_owner = NULL, lease_expires_at = NULL, last_error_code = NULL,
           last_error_message = NULL, next_poll_at = c.next_poll_at, updated_at = c.now,
           calls_spent = a.calls_spent + jsonb_array_length(c.calls)
      FROM prev JOIN c ON c.id = prev.id
     WHERE a.id = prev.id
    RETURNING a.id, prev.state AS from_state
), spent AS (
    SELECT c.id, c.now, c.month, s.*
      FROM c, ROWS FROM (jsonb_to_recordset(c.calls)
                         AS (endpoint text, purpose text, http_status integer, code text,
                             duration_ms integer, message text, metered boolean))
              WITH ORDINALITY AS s (endpoint, purpose, http_status, code, duration_ms,
                                    message, metered, n)
), logged AS (
    INSERT INTO syncd.approval_event
           (approval_id, at, event_type, from_state, to_state, endpoint, http_status, code,
            duration_ms, message, actor)
    SELECT e.id, e.now, e.event_type, e.from_state, e.to_state, e.endpoint, e.http_status,
           e.code, e.duration_ms, e.message, %(actor)s
      FROM (SELECT id, now, 'call' AS event_type, NULL AS from_state, NULL AS to_state,
                   endpoint, http_status, code, duration_ms, message, n
              FROM spent
            UNION ALL
            SELECT c.id, c.now, 'transition', moved.from_state, 'running', NULL, NULL, NULL,
                   NULL, c.message, 2147483647
              FROM moved JOIN c ON c.id = moved.id) e
     ORDER BY e.id, e.n
), used AS (
    INSERT INTO syncd.usage (month, purpose, calls)
    SELECT month, purpose, count(*) FROM spent WHERE metered IS NOT FALSE
     GROUP BY month, purpose ORDER BY month, purpose
    ON CONFLICT (month, purpose) DO UPDATE SET calls = syncd.usage.calls + EXCLUDED.calls
)
SELECT id FROM moved ORDER BY id;

-- record_attempt_failed --
-- A submit attempt ended without an instance: back to pending, unknown, invalid or dead (only by the claim's owner).
WITH prev AS (
    SELECT id, state FROM syncd.approval
     WHERE id = %(id)s AND state IN ('submitting', 'unknown') AND instance_id IS NULL
       AND (%(owner)s::text IS NULL OR lease_owner = %(owner)s)
       FOR UPDATE
)
UPDATE syncd.approval a
   SET state = %(to_state)s, next_attempt_at = %(next_attempt_at)s,
       attempts = greatest(a.attempts - %(refund)s, 0),
       lease_owner = NULL, lease_expires_at = NULL,
       process_code = coalesce(%(process_code)s, a.process_code),
       form_values = coalesce(%(form_values)s, a.form_values),
       last_error_code = %(error_code)s, last_error_message = %(error_message)s,
       calls_spent = a.calls_spent + %(calls)s, updated_at = %(now)s
  FROM prev
 WHERE a.id = prev.id
RETURNING prev.state AS from_state;

-- expire_submit_leases --
-- Submits whose worker vanished may have reached DingTalk: they must be reconciled.
UPDATE syncd.approval
   SET state = 'unknown', lease_owner = NULL, lease_expires_at = NULL,
       next_attempt_at = %(now)s, last_error_code = 'lease_expired',
       last_error_message = 'the worker submitting this approval stopped; reconciling',
       updated_at = %(now)s
 WHERE state = 'submitting' AND lease_expires_at < %(now)s
RETURNING id;

-- claim_unknown_batch --
-- Approvals whose create outcome is unknown and due for reconciling; takes a lease.
WITH due AS (
    SELECT id FROM syncd.approval
     WHERE state = 'unknown' AND next_attempt_at <= %(now)s
       AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)
     ORDER BY next_attempt_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.approval a
   SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s, updated_at = %(now)s
  FROM due
 WHERE a.id = due.id
RETURNING a.id, a.kind, a.business_key, a.round, a.payload, a.originator, a.dept_id,
          a.process_code, a.form_values, a.attempts, a.submitted_at, a.captured_at,
          a.originator_user_id;

-- select_known_instances --
-- Which of these DingTalk instance ids already belong to an approval.
SELECT instance_id FROM syncd.approval WHERE instance_id = ANY(%(ids)s);

-- add_calls --
-- Count DingTalk calls spent on an approval outside a state change.
UPDATE syncd.approval SET calls_spent = calls_spent + %(calls)s WHERE id = %(id)s;

-- add_usage --
-- Count DingTalk calls per month and purpose.
INSERT INTO syncd.usage (month, purpose, calls)
VALUES (%(month)s, %(purpose)s, %(calls)s)
ON CONFLICT (month, purpose) DO UPDATE SET calls = syncd.usage.calls + EXCLUDED.calls;

-- select_usage --
-- Calls spent in a month, per purpose.
SELECT purpose, calls FROM syncd.usage WHERE month = %(month)s ORDER BY purpose;

-- select_control --
-- A cluster-wide switch, if set and not expired.
SELECT name, reason, until, set_at, set_by FROM syncd.control
 WHERE name = %(name)s AND (until IS NULL OR until > %(now)s);

-- set_control --
-- Set a cluster-wide switch.
INSERT INTO syncd.control (name, reason, until, set_at, set_by)
VALUES (%(name)s, %(reason)s, %(until)s, %(now)s, %(set_by)s)
ON CONFLICT (name) DO UPDATE
   SET reason = EXCLUDED.reason, until = EXCLUDED.until, set_at = EXCLUDED.set_at,
       set_by = EXCLUDED.set_by;

-- clear_control --
-- Clear a cluster-wide switch.
DELETE FROM syncd.control WHERE name = %(name)s;

-- claim_inbox_batch --
-- Due unprocessed events; pushing next_attempt_at forward works as a lease. New events
-- (no next_attempt_at) first; the index (inbox_due_idx) ends the scan at the first event
-- not due, so events leased or deferred cost the claim nothing.
WITH due AS (
    SELECT id FROM syncd.inbox
     WHERE processed_at IS NULL
       AND coalesce(next_attempt_at, '-infinity'::timestamptz) <= %(now)s
     ORDER BY coalesce(next_attempt_at, '-infinity'::timestamptz), id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.inbox i
   SET next_attempt_at = %(lease_until)s, attempts = i.attempts + 1
  FROM due
 WHERE i.id = due.id
RETURNING i.id, i.channel, i.event_type, i.instance_id, i.payload, i.received_at, i.attempts;

-- defer_inbox_event --
-- Try an event again later (e.g. its instance is not known yet).
UPDATE syncd.inbox SET next_attempt_at = %(next_attempt_at)s, last_error = %(error)s
 WHERE id = %(id)s;

-- mark_inbox_processed --
-- Events handled (or deliberately dropped, with the reason in last_error).
UPDATE syncd.inbox SET processed_at = %(now)s, last_error = %(note)s
 WHERE id = ANY(%(ids)s) AND processed_at IS NULL;

-- select_approval_by_instance --
-- The approval a DingTalk instance belongs to.
SELECT id, kind, business_key, round, state, instance_id, instance_created_at, calls_spent
  FROM syncd.approval
 WHERE instance_id = %(instance_id)s;

-- select_approvals_by_instances --
-- The approvals a batch of DingTalk instances belong to (apply looks a batch up at once).
SELECT id, kind, business_key, round, state, instance_id, instance_created_at, calls_spent
  FROM syncd.approval
 WHERE instance_id = ANY(%(instance_ids)s);

-- touch_approvals --
-- Events arrived for running approvals: they are alive, so polling can wait. Locked in id
-- order, as every batch is. What they told (tasks; the instance's link, ``urls`` aligned
-- with ``ids``) is a change the business row may show: a new progress version, due at
-- ``progress_due`` unless a write is pending already.
WITH locked AS (
    SELECT id FROM syncd.approval
     WHERE id = ANY(%(ids)s) AND state = 'running'
     ORDER BY id
       FOR NO KEY UPDATE
), told AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(urls)s::text[]) AS l (id, url)
)
UPDATE syncd.approval a
   SET last_event_at = %(now)s, next_poll_at = greatest(a.next_poll_at, %(next_poll_at)s),
       url = coalesce(told.url, a.url), progress_seq = a.progress_seq + 1,
       progress_at = %(now)s,
       progress_next_at = CASE WHEN a.progress_seq > a.progress_written_seq
                               THEN a.progress_next_at ELSE %(progress_due)s END,
       updated_at = %(now)s
  FROM locked JOIN told ON told.id = locked.id
 WHERE a.id = locked.id;

-- upsert_tasks --
-- Approver tasks and operation records, as last seen (a JSON array of objects, one row per
-- key in a call; what a record does not say keeps its earlier value). A task's times, once
-- known, stay (an event's milliseconds beat a GET's minutes), and a task that ended does
-- not start again when its start event comes late.
INSERT INTO syncd.task
       (approval_id, instance_id, record_type, record_key, activity_id, user_id, status,
        result, operation, remark, started_at, finished_at, recorded_at, activity_name,
        pc_url, mobile_url)
SELECT t.approval_id, t.instance_id, t.record_type, t.record_key, t.activity_id, t.user_id,
       t.status, t.result, t.operation, t.remark, t.started_at, t.finished_at, %(now)s,
       t.activity_name, t.pc_url, t.mobile_url
  FROM jsonb_to_recordset(%(tasks)s::jsonb)
       AS t (approval_id bigint, instance_id text, record_type text, record_key text,
             activity_id text, user_id text, status text, result text, operation text,
             remark text, started_at timestamptz, finished_at timestamptz,
             activity_name text, pc_url text, mobile_url text)
 ORDER BY t.approval_id, t.record_type, t.record_key
ON CONFLICT (approval_id, record_type, record_key) DO UPDATE
   SET activity_id = coalesce(EXCLUDED.activity_id, syncd.task.activity_id),
       activity_name = coalesce(EXCLUDED.activity_name, syncd.task.activity_name),
       pc_url = coalesce(EXCLUDED.pc_url, syncd.task.pc_url),
       mobile_url = coalesce(EXCLUDED.mobile_url, syncd.task.mobile_url),
       user_id = coalesce(EXCLUDED.user_id, syncd.task.user_id),
       status = CASE WHEN EXCLUDED.status = 'RUNNING' AND syncd.task.status <> 'RUNNING'
                     THEN syncd.task.status
                     ELSE coalesce(EXCLUDED.status, syncd.task.status) END,
       result = coalesce(EXCLUDED.result, syncd.task.result),
       operation = coalesce(EXCLUDED.operation, syncd.task.operation),
       remark = coalesce(EXCLUDED.remark, syncd.task.remark),
       started_at = coalesce(syncd.task.started_at, EXCLUDED.started_at),
       finished_at = coalesce(syncd.task.finished_at, EXCLUDED.finished_at),
       recorded_at = EXCLUDED.recorded_at;

-- finish_approvals --
-- DingTalk decided (or requests were canceled): move approvals (a JSON array of objects, one
-- per approval) to a final state, never backwards, in id order; mark the events that said so
-- processed and write the transitions into the history. Returns, for each approval that
-- moved, everything a write-back may use; a duplicate or late event moves nothing and
-- returns nothing. Who decided and the last remark are kept with the approval: as the
-- instance said (``decided``, from a GET), else from the tasks recorded so far (earlier
-- in the transaction included).
-- With ``written``, the approvals that moved are also marked written back (unless they
-- were already): the caller writes their outcomes in the same transaction, and a refusal
-- rolls it all back, so the row is rewritten once, not twice. ``written_back_at`` is
-- returned as it was before the statement (NULL: the outcome is due).
WITH done AS (
    UPDATE syncd.inbox SET processed_at = %(now)s
     WHERE id = ANY(%(inbox_ids)s::bigint[]) AND processed_at IS NULL
), f AS (
    SELECT * FROM jsonb_to_recordset(%(finals)s::jsonb)
           AS (id bigint, from_states text[], to_state text, dingtalk_status text,
               dingtalk_result text, finished_at timestamptz, business_id text,
               decided boolean, approver text, remark text, calls integer, message text,
               url text)
), prev AS (
    SELECT a.id, a.state, a.written_back_at FROM syncd.approval a JOIN f ON f.id = a.id
     WHERE a.state = ANY(f.from_states)
     ORDER BY a.id
       FOR UPDATE OF a
), moved AS (
    UPDATE syncd.approval a
       SET state = f.to_state, dingtalk_status = f.dingtalk_status,
           dingtalk_result = f.dingtalk_result,
           finished_at = coalesce(f.finished_at, %(now)s),
           business_id = coalesce(f.business_id, a.business_id),
           approver = CASE WHEN f.decided THEN f.approver
                           ELSE syncd.approval_approver(a.id) END,
           remark = CASE WHEN f.decided THEN f.remark ELSE syncd.approval_remark(a.id) END,
           calls_spent = a.calls_spent + f.calls, url = coalesce(f.url, a.url),
           lease_owner = NULL, lease_expires_at = NULL, next_poll_at = NULL,
           next_attempt_at = %(now)s, updated_at = %(now)s,
           written_back_at = CASE WHEN %(written)s THEN coalesce(a.written_back_at, %(now)s)
                                  ELSE a.written_back_at END,
           writeback_attempts = a.writeback_attempts
                                + CASE WHEN %(written)s AND a.written_back_at IS NULL
                                       THEN 1 ELSE 0 END,
           last_error_code = CASE WHEN %(written)s AND a.written_back_at IS NULL
                                  THEN NULL ELSE a.last_error_code END,
           last_error_message = CASE WHEN %(written)s AND a.written_back_at IS NULL
                                     THEN NULL ELSE a.last_error_message END
      FROM prev JOIN f ON f.id = prev.id
     WHERE a.id = prev.id
    RETURNING a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.business_id,
              a.dingtalk_status, a.dingtalk_result, a.finished_at, prev.written_back_at,
              a.calls_spent, a.remark, a.approver, a.url, a.progress_seq,
              syncd.approval_task_url(a.id, 'pc') AS task_pc_url,
              syncd.approval_task_url(a.id, 'mobile') AS task_mobile_url,
              syncd.approval_written_comments(a.id) AS comments,
              prev.state AS from_state, f.message
), logged AS (
    INSERT INTO syncd.approval_event (approval_id, at, event_type, from_state, to_state,
                                      message, actor)
    SELECT id, %(now)s, 'transition', from_state, state, message, %(actor)s
      FROM moved ORDER BY id
)
SELECT m.* FROM moved m ORDER BY m.id;

-- select_outcome --
-- Everything a write-back may use about one finished approval (locked).
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.business_id,
       a.dingtalk_status, a.dingtalk_result, a.finished_at, a.written_back_at,
       a.last_error_code, a.last_error_message,
       coalesce(a.remark, syncd.approval_remark(a.id)) AS remark,
       coalesce(a.approver, syncd.approval_approver(a.id)) AS approver,
       a.url, a.progress_seq, syncd.approval_task_url(a.id, 'pc') AS task_pc_url,
       syncd.approval_task_url(a.id, 'mobile') AS task_mobile_url,
       syncd.approval_written_comments(a.id) AS comments
  FROM syncd.approval a
 WHERE a.id = %(id)s
   FOR UPDATE OF a;

-- lock_writeback_keys --
-- Serialise the write-backs of these business keys (kind and key, as arrays) with every
-- other write of the same keys, final or progress (lock_progress takes the same lock), in
-- one order, so that the check that follows sees what a newer round committed.
SELECT pg_catalog.pg_advisory_xact_lock(s.kind_hash, s.key_hash)::text AS key_lock
  FROM (SELECT DISTINCT pg_catalog.hashtext(k.kind) AS kind_hash,
                        pg_catalog.hashtext(k.key) AS key_hash
          FROM unnest(%(kinds)s::text[], %(keys)s::text[]) AS k(kind, key)
         ORDER BY 1, 2 OFFSET 0) s;

-- select_newer_writes --
-- Of these approvals, those whose business row a newer round of the same key has written
-- (its outcome or its progress), with the newest such round: their own outcome is stale
-- and must not overwrite it.
SELECT a.id, max(n.round) AS newer_round
  FROM syncd.approval a
  JOIN syncd.approval n
    ON n.kind = a.kind AND n.business_key = a.business_key AND n.round > a.round
 WHERE a.id = ANY(%(ids)s::bigint[])
   AND (n.written_back_at IS NOT NULL OR n.progress_written_at IS NOT NULL)
 GROUP BY a.id;

-- mark_written_back --
-- Outcomes are in the business table (same transaction as the writes; a JSON array of
-- objects: approval id and history note): say so in the approvals and their history, and
-- wake listeners of syncd_result (the approval id as payload).
WITH w AS (
    SELECT * FROM jsonb_to_recordset(%(written)s::jsonb) AS (id bigint, message text)
), marked AS (
    UPDATE syncd.approval a
       SET written_back_at = %(now)s, writeback_attempts = a.writeback_attempts + 1,
           last_error_code = NULL, last_error_message = NULL, updated_at = %(now)s
      FROM w
     WHERE a.id = w.id
    RETURNING a.id, w.message
), logged AS (
    INSERT INTO syncd.approval_event (approval_id, at, event_type, message, actor)
    SELECT id, %(now)s, 'note', message, %(actor)s FROM marked ORDER BY id
)
SELECT pg_notify('syncd_result', id::text) FROM marked ORDER BY id;

-- note_written_back --
-- The outcomes of approvals ``finish_approvals`` marked written are in the business table
-- (same transaction; a JSON array of objects: approval id and history note): the notes in
-- their history, and a wake-up for listeners of syncd_result (the approval id as payload).
WITH w AS (
    SELECT * FROM jsonb_to_recordset(%(written)s::jsonb) AS (id bigint, message text)
), logged AS (
    INSERT INTO syncd.approval_event (approval_id, at, event_type, message, actor)
    SELECT id, %(now)s, 'note', message, %(actor)s FROM w ORDER BY id
)
SELECT pg_notify('syncd_result', id::text) FROM w ORDER BY id;

-- record_writeback_failed --
-- The write-back failed; it is retried later, and shows in syncd.unwritten.
UPDATE syncd.approval
   SET writeback_attempts = writeback_attempts + 1, next_attempt_at = %(next_attempt_at)s,
       last_error_code = 'writeback_failed', last_error_message = %(error)s,
       updated_at = %(now)s
 WHERE id = %(id)s AND written_back_at IS NULL;

-- claim_unwritten_batch --
-- Finished approvals whose write-back is due again; pushing next_attempt_at is the lease.
WITH due AS (
    SELECT id FROM syncd.approval
     WHERE state IN ('approved', 'rejected', 'canceled') AND written_back_at IS NULL
       AND next_attempt_at <= %(now)s AND writeback_attempts < %(max_attempts)s
     ORDER BY next_attempt_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.approval a
   SET next_attempt_at = %(lease_until)s
  FROM due
 WHERE a.id = due.id
RETURNING a.id, a.kind, a.business_key, a.round, a.state, a.instance_id,
          a.instance_created_at;

-- claim_poll_batch --
-- Running approvals due for a poll; pushing next_poll_at forward works as a lease.
WITH due AS (
    SELECT id FROM syncd.approval
     WHERE state = 'running' AND next_poll_at <= %(now)s
     ORDER BY next_poll_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.approval a
   SET next_poll_at = %(lease_until)s
  FROM due
 WHERE a.id = due.id
RETURNING a.id, a.kind, a.business_key, a.round, a.instance_id, a.instance_created_at,
          a.last_event_at, a.captured_at;

-- set_next_poll --
-- When to poll a running approval next.
UPDATE syncd.approval SET next_poll_at = %(next_poll_at)s, calls_spent = calls_spent + %(calls)s
 WHERE id = %(id)s AND state = 'running';

-- claim_cancel_batch --
-- Running approvals asked to cancel, older than DingTalk's 15 s revoke guard; takes a lease.
WITH due AS (
    SELECT id FROM syncd.approval
     WHERE cancel_requested_at IS NOT NULL AND state = 'running'
       AND instance_created_at <= %(created_before)s
       AND next_attempt_at <= %(now)s
       AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)
     ORDER BY cancel_requested_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE syncd.approval a
   SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s, updated_at = %(now)s
  FROM due
 WHERE a.id = due.id
RETURNING a.id, a.kind, a.business_key, a.instance_id, a.originator;

-- select_pending_cancels --
-- Approvals asked to cancel before they were ever submitted.
SELECT id FROM syncd.approval
 WHERE cancel_requested_at IS NOT NULL AND state = 'pending'
 ORDER BY id
 LIMIT %(limit)s;

-- release_cancel --
-- A terminate attempt failed for now: try again later.
UPDATE syncd.approval
   SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = %(next_attempt_at)s,
       last_error_code = %(error_code)s, last_error_message = %(error_message)s,
       calls_spent = calls_spent + %(calls)s, updated_at = %(now)s
 WHERE id = %(id)s AND state = 'running';

-- select_procedure_exists --
-- Whether a write-back procedure exists.
SELECT to_regproc(%(name)s) IS NOT NULL AS present;

-- select_approval_ref --
-- One approval by id.
SELECT id, kind, business_key, round, state, instance_id, instance_created_at, calls_spent
  FROM syncd.approval
 WHERE id = %(id)s;

-- ping --
-- Keep a quiet connection alive and prove it still works.
SELECT 1 AS ok;

-- ensure_rate_limit_endpoint --
-- Create an endpoint's pacing row if it is missing.
INSERT INTO syncd.rate_limit (endpoint)
VALUES (%(endpoint)s)
ON CONFLICT (endpoint) DO NOTHING;

-- reserve_rate_slot --
-- Take the endpoint's next free slot unless it is more than max_wait seconds away; no row means "too far off" (or no pacing row yet). now is NULL (the database's clock, shared by every replica) except in tests. Returns the database's time of the reservation (epoch seconds), how far after it the slot starts, and the shared rate cut (cut_ago: seconds since it).
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
UPDATE syncd.rate_limit AS r
   SET next_slot_at = greatest(r.next_slot_at, clock.now) + make_interval(secs => %(interval)s::float8)
  FROM clock
 WHERE r.endpoint = %(endpoint)s
   AND r.next_slot_at <= clock.now + make_interval(secs => %(max_wait)s::float8)
RETURNING r.next_slot_at - make_interval(secs => %(interval)s::float8) AS slot_at,
          extract(epoch FROM clock.now)::float8 AS database_now,
          greatest(0, extract(epoch FROM r.next_slot_at - clock.now)::float8
                      - %(interval)s::float8) AS wait_seconds,
          extract(epoch FROM clock.now - r.cut_at)::float8 AS cut_ago,
          r.cut_peak,
          r.cut_share;

-- select_rate_slot_wait --
-- Seconds until the endpoint's next free slot (reserves nothing).
SELECT greatest(0, extract(epoch FROM next_slot_at
                                      - coalesce(%(now)s::timestamptz, clock_timestamp())))::float8
       AS wait_seconds
  FROM syncd.rate_limit
 WHERE endpoint = %(endpoint)s;

-- penalize_rate_limit --
-- DingTalk throttled the endpoint: no replica gets a slot before now + seconds.
UPDATE syncd.rate_limit
   SET next_slot_at = greatest(next_slot_at,
                               coalesce(%(now)s::timestamptz, clock_timestamp())
                               + make_interval(secs => %(seconds)s::float8))
 WHERE endpoint = %(endpoint)s;

-- cut_rate_limit --
-- Record a replica's rate cut for every replica, unless another replica cut it within cooldown seconds (that throttle answered calls sent before its cut). Returns the row when this cut is the one kept.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
UPDATE syncd.rate_limit AS r
   SET cut_at = clock.now, cut_peak = %(peak)s::float8, cut_share = %(share)s::float8
  FROM clock
 WHERE r.endpoint = %(endpoint)s
   AND (r.cut_at IS NULL OR r.cut_at <= clock.now - make_interval(secs => %(cooldown)s::float8))
RETURNING r.endpoint;

-- claim_turn --
-- Take a periodic job's turn: at most one replica runs it per interval (a lease, no lock).
INSERT INTO syncd.control (name, reason, until, set_at, set_by)
VALUES (%(name)s, 'periodic job turn', %(until)s, %(now)s, %(set_by)s)
ON CONFLICT (name) DO UPDATE
   SET until = EXCLUDED.until, set_at = EXCLUDED.set_at, set_by = EXCLUDED.set_by
 WHERE syncd.control.until IS NULL OR syncd.control.until <= EXCLUDED.set_at
RETURNING name;

-- delete_old_outbox --
-- Retention: consumed outbox rows older than the cutoff, in bounded batches; quarantined rows stay.
DELETE FROM syncd.outbox
 WHERE id IN (SELECT o.id FROM syncd.outbox o
               WHERE o.consumed_at IS NOT NULL AND o.consumed_at < %(cutoff)s
                 AND NOT EXISTS (SELECT 1 FROM syncd.outbox_quarantine q
                                  WHERE q.outbox_id = o.id)
               ORDER BY o.consumed_at LIMIT %(limit)s);

-- delete_old_inbox --
-- Retention: processed events older than the cutoff, in bounded batches.
DELETE FROM syncd.inbox
 WHERE id IN (SELECT id FROM syncd.inbox
               WHERE processed_at IS NOT NULL AND processed_at < %(cutoff)s
               ORDER BY processed_at LIMIT %(limit)s);

-- ---- demo ----

-- select_demo_states --
-- Approvals per state and whether their kind is inbound (one of the text[] inbound), with the DingTalk calls they spent and finished ones not yet written back.
SELECT state,
       kind = ANY (%(inbound)s::text[]) AS inbound,
       count(*)::int AS approvals,
       coalesce(sum(calls_spent), 0)::int AS calls_spent,
       count(*) FILTER (WHERE finished_at IS NOT NULL AND written_back_at IS NULL)::int AS unwritten
  FROM syncd.approval
 GROUP BY 1, 2;

-- select_demo_latencies --
-- p50/p95 seconds from outbox commit to DingTalk instance, and from decision to write-back (outbound kinds: not the text[] inbound); unconsumed outbox rows.
SELECT percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM instance_created_at - captured_at)::float8) AS created_p50,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY extract(epoch FROM instance_created_at - captured_at)::float8) AS created_p95,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY greatest(0, extract(epoch FROM written_back_at - finished_at))::float8)
           AS written_p50,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY greatest(0, extract(epoch FROM written_back_at - finished_at))::float8)
           AS written_p95,
       (SELECT count(*) FROM syncd.outbox WHERE consumed_at IS NULL)::int AS unconsumed
  FROM syncd.approval
 WHERE NOT kind = ANY (%(inbound)s::text[]);

-- select_demo_running_instances --
-- DingTalk instance ids of running approvals (the demo asks its simulator which wait for a person).
SELECT instance_id, kind = ANY (%(inbound)s::text[]) AS inbound
  FROM syncd.approval WHERE state = 'running' AND instance_id IS NOT NULL;

-- ---- operator commands ----

-- select_status --
-- Per kind and state: approvals, the oldest capture, unwritten and stuck counts, live-status writes refused (syncd.progress_unwritten), parked rounds replaced by a newer round, calls spent.
SELECT a.kind, a.state, count(*) AS approvals, min(a.captured_at) AS oldest_captured_at,
       count(*) FILTER (WHERE a.written_back_at IS NULL
                          AND a.state IN ('approved', 'rejected', 'canceled')) AS unwritten,
       count(*) FILTER (WHERE a.progress_error IS NOT NULL
                          AND a.state IN ('running', 'invalid', 'dead')) AS progress_unwritten,
       count(*) FILTER (WHERE a.state IN ('pending', 'submitting', 'unknown')
                          AND a.captured_at < %(stuck_before)s) AS stuck,
       count(*) FILTER (WHERE a.state IN ('invalid', 'dead')
                          AND EXISTS (SELECT 1 FROM syncd.approval n
                                       WHERE n.kind = a.kind
                                         AND n.business_key = a.business_key
                                         AND n.round > a.round)) AS superseded,
       coalesce(sum(a.calls_spent), 0) AS calls_spent
  FROM syncd.approval a
 WHERE %(kind)s::text IS NULL OR a.kind = %(kind)s
 GROUP BY a.kind, a.state
 ORDER BY a.kind, a.state;

-- select_outbox_backlog --
-- Outbox rows not ingested yet, per kind, with the oldest.
SELECT kind, count(*) AS waiting, min(created_at) AS oldest_at
  FROM syncd.outbox
 WHERE consumed_at IS NULL AND (%(kind)s::text IS NULL OR kind = %(kind)s)
 GROUP BY kind
 ORDER BY kind;

-- select_quarantine_by_kind --
-- Quarantined outbox rows per kind, with the oldest.
SELECT kind, count(*) AS quarantined, min(quarantined_at) AS oldest_at
  FROM syncd.outbox_quarantine
 WHERE %(kind)s::text IS NULL OR kind = %(kind)s
 GROUP BY kind
 ORDER BY kind;

-- requeue_quarantined --
-- An operator sends quarantined outbox rows (these outbox ids, or all; of a kind or any) back to ingest: unconsumed, quarantine line removed.
WITH q AS (
    DELETE FROM syncd.outbox_quarantine
     WHERE (cardinality(%(ids)s::bigint[]) = 0 OR outbox_id = ANY(%(ids)s::bigint[]))
       AND (%(kind)s::text IS NULL OR kind = %(kind)s)
    RETURNING outbox_id, kind, business_key, error_code, error_message
)
UPDATE syncd.outbox o
   SET consumed_at = NULL
  FROM q
 WHERE o.id = q.outbox_id
RETURNING q.outbox_id, q.kind, q.business_key, q.error_code, q.error_message;

-- select_rounds --
-- Every round of one business key (or the one asked for), oldest first.
SELECT id, kind, business_key, round, state, outbox_id, payload, originator,
       originator_user_id, dept_id, process_code, instance_id, business_id, attempts, next_attempt_at, lease_owner,
       lease_expires_at, last_error_code, last_error_message, dingtalk_status, dingtalk_result,
       calls_spent, cancel_requested_at, last_event_at, next_poll_at, captured_at,
       submitted_at, instance_created_at, finished_at, written_back_at, writeback_attempts,
       updated_at
  FROM syncd.approval
 WHERE kind = %(kind)s AND business_key = %(business_key)s
   AND (%(round)s::integer IS NULL OR round = %(round)s)
 ORDER BY round;

-- select_approval_history --
-- The history of some approvals, in the order it was written.
SELECT approval_id, at, event_type, from_state, to_state, endpoint, http_status, code,
       duration_ms, message, actor
  FROM syncd.approval_event
 WHERE approval_id = ANY(%(ids)s)
 ORDER BY approval_id, id;

-- select_approval_tasks --
-- Approver tasks and operation records of some approvals, in the order they happened.
SELECT approval_id, record_type, record_key, activity_id, user_id, status, result, operation,
       remark, started_at, finished_at
  FROM syncd.task
 WHERE approval_id = ANY(%(ids)s)
 ORDER BY approval_id, coalesce(finished_at, started_at, recorded_at), id;

-- select_approvals_brief --
-- Where some approvals stand, and whether a newer round of the same key exists.
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.written_back_at,
       a.last_error_code, a.last_error_message,
       EXISTS (SELECT 1 FROM syncd.approval n
                WHERE n.kind = a.kind AND n.business_key = a.business_key
                  AND n.round > a.round) AS superseded
  FROM syncd.approval a
 WHERE a.id = ANY(%(ids)s)
 ORDER BY a.id;

-- select_parked_ids --
-- Parked approvals of a kind in the given states (invalid, dead), oldest first; with superseded, only those replaced by a newer round of their key.
SELECT a.id FROM syncd.approval a
 WHERE a.kind = %(kind)s AND a.state = ANY(%(states)s)
   AND (NOT %(superseded)s
        OR EXISTS (SELECT 1 FROM syncd.approval n
                    WHERE n.kind = a.kind AND n.business_key = a.business_key
                      AND n.round > a.round))
 ORDER BY a.id;

-- select_key_round --
-- The approval id of one round of a business key, or of its latest round.
SELECT id FROM syncd.approval
 WHERE kind = %(kind)s AND business_key = %(business_key)s
   AND (%(round)s::integer IS NULL OR round = %(round)s)
 ORDER BY round DESC
 LIMIT 1;

-- select_active_round --
-- The approval id of the round of a business key still on its way (at most one).
SELECT id FROM syncd.approval
 WHERE kind = %(kind)s AND business_key = %(business_key)s
   AND state IN ('pending', 'submitting', 'running', 'unknown')
 ORDER BY round DESC
 LIMIT 1;

-- retry_parked --
-- An operator sends a parked approval back to pending: attempts reset, error cleared, due now; never an older round of a key that has a newer one, nor one whose business key was too long to store (it holds a shortened key), nor the record of a cancel or comment for a key never submitted (its payload is not a request), nor an instance started in DingTalk whose import was refused (nothing to submit).
WITH prev AS (
    SELECT a.id, a.state, a.last_error_code, a.last_error_message
      FROM syncd.approval a
     WHERE a.id = %(id)s AND a.state IN ('invalid', 'dead')
       AND coalesce(a.last_error_code, '') NOT IN
           ('key_too_long', 'nothing_to_cancel', 'nothing_to_comment',
            'inbound_refused')
       AND NOT EXISTS (SELECT 1 FROM syncd.approval n
                        WHERE n.kind = a.kind AND n.business_key = a.business_key
                          AND n.round > a.round)
       FOR UPDATE
)
UPDATE syncd.approval a
   SET state = 'pending', attempts = 0, next_attempt_at = %(now)s, last_error_code = NULL,
       last_error_message = NULL, lease_owner = NULL, lease_expires_at = NULL,
       updated_at = %(now)s
  FROM prev
 WHERE a.id = prev.id
RETURNING a.id, a.kind, a.business_key, a.round, prev.state AS from_state,
          prev.last_error_code, prev.last_error_message;

-- dismiss_parked --
-- An operator closes a parked approval for good: never sent, retried or counted as parked again; its error stays (why it was parked).
WITH prev AS (
    SELECT a.id, a.state FROM syncd.approval a
     WHERE a.id = %(id)s AND a.state IN ('invalid', 'dead')
       FOR UPDATE
)
UPDATE syncd.approval a
   SET state = 'dismissed', lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
  FROM prev
 WHERE a.id = prev.id
RETURNING a.id, a.kind, a.business_key, a.round, prev.state AS from_state,
          a.last_error_code, a.last_error_message;

-- request_cancel --
-- An operator asks to cancel an approval still on its way; the cancel stage terminates it.
WITH prev AS (
    SELECT id, cancel_requested_at FROM syncd.approval
     WHERE id = %(id)s AND state IN ('pending', 'submitting', 'running', 'unknown')
       FOR UPDATE
)
UPDATE syncd.approval a
   SET cancel_requested_at = coalesce(a.cancel_requested_at, %(now)s), updated_at = %(now)s
  FROM prev
 WHERE a.id = prev.id
RETURNING a.id, a.kind, a.business_key, a.round, a.state, a.instance_id,
          prev.cancel_requested_at AS requested_before;

-- select_unwritten_ids --
-- Finished approvals of a kind whose outcome is not written back yet, oldest first.
SELECT id FROM syncd.approval
 WHERE kind = %(kind)s AND state IN ('approved', 'rejected', 'canceled')
   AND written_back_at IS NULL
 ORDER BY id;

-- hold_writeback --
-- Before a replay: hold back the daemon's write-back retry of a finished approval (already written ones only when forced).
UPDATE syncd.approval
   SET next_attempt_at = %(hold_until)s, updated_at = %(now)s
 WHERE id = %(id)s AND state IN ('approved', 'rejected', 'canceled')
   AND (written_back_at IS NULL OR %(force)s)
RETURNING id, written_back_at;

-- select_instance_owners --
-- The approvals owning any of these DingTalk instance ids.
SELECT id, kind, business_key, round, state, instance_id, instance_created_at
  FROM syncd.approval
 WHERE instance_id = ANY(%(ids)s);

-- select_running_since --
-- Running approvals of a template whose instance was created since a time (DingTalk should list them).
SELECT id, kind, business_key, round, state, instance_id, instance_created_at
  FROM syncd.approval
 WHERE kind = %(kind)s AND state = 'running' AND process_code = %(process_code)s
   AND instance_created_at >= %(since)s
 ORDER BY id;

-- select_unknown_rounds --
-- Approvals of a kind whose create outcome is unknown, as the reconciler matches them.
SELECT id, kind, business_key, round, payload, originator, dept_id, attempts, captured_at,
       process_code, form_values, submitted_at
  FROM syncd.approval
 WHERE kind = %(kind)s AND state = 'unknown' AND instance_id IS NULL
 ORDER BY id;

-- ---- metrics ----

-- metrics_outbox_backlog --
-- /metrics: outbox rows not yet ingested per kind and per database they came from
-- ('syncd': written into syncd.outbox), and the age of the oldest.
SELECT kind, coalesce(source_database, 'syncd') AS database, count(*) AS items,
       greatest(0, extract(epoch FROM %(now)s::timestamptz - min(created_at)))::float8
           AS oldest_seconds
  FROM syncd.outbox
 WHERE consumed_at IS NULL
 GROUP BY kind, coalesce(source_database, 'syncd');

-- metrics_outbox_quarantine --
-- /metrics: quarantined outbox rows per kind, and how long the oldest has been there.
SELECT kind, count(*) AS items,
       greatest(0, extract(epoch FROM %(now)s::timestamptz - min(quarantined_at)))::float8
           AS oldest_seconds
  FROM syncd.outbox_quarantine
 GROUP BY kind;

-- metrics_open_approvals --
-- /metrics: approvals in open and parked states per kind and state, oldest capture age.
SELECT kind, state, count(*) AS items,
       greatest(0, extract(epoch FROM %(now)s::timestamptz - min(captured_at)))::float8
           AS oldest_seconds
  FROM syncd.approval
 WHERE state IN ('pending', 'submitting', 'unknown', 'running', 'invalid', 'dead')
 GROUP BY kind, state;

-- metrics_unwritten --
-- /metrics: finished approvals whose business row is not written yet, oldest finish age.
SELECT kind, count(*) AS items,
       greatest(0, extract(epoch FROM %(now)s::timestamptz - min(finished_at)))::float8
           AS oldest_seconds
  FROM syncd.approval
 WHERE written_back_at IS NULL AND state IN ('approved', 'rejected', 'canceled')
 GROUP BY kind;

-- metrics_inbox_backlog --
-- /metrics: received events not yet applied per channel, and the age of the oldest.
SELECT channel, count(*) AS items,
       greatest(0, extract(epoch FROM %(now)s::timestamptz - min(received_at)))::float8
           AS oldest_seconds
  FROM syncd.inbox
 WHERE processed_at IS NULL
 GROUP BY channel;

-- metrics_control --
-- /metrics: cluster-wide switches in force (pauses, periodic-job turns).
SELECT name, reason, set_by
  FROM syncd.control
 WHERE until IS NULL OR until > %(now)s;

-- ---- statistics (syncd report) ----

-- set_report_time_zone --
-- The time zone a report's periods begin in, for the rest of its transaction (the statistics views cut periods in the session's time zone).
SELECT set_config('TimeZone', %(tz)s::text, true) AS time_zone;

-- select_report_range --
-- The first days of a report's first and last periods (day, week, month), in the session's time zone: the period holding until (default: the one holding now) and the one holding since (default: count periods in all).
WITH l AS (
    SELECT date_trunc(%(period)s::text,
                      coalesce(%(until)s::date, %(now)s::timestamptz::date)::timestamptz)
               AS last_start
)
SELECT coalesce(date_trunc(%(period)s::text, %(since)s::date::timestamptz),
                l.last_start - (%(count)s::integer - 1) * ('1 ' || %(period)s::text)::interval
               )::date AS first,
       l.last_start::date AS last
  FROM l;

-- select_stats_by_period --
-- syncd report: per period and kind (one kind, or all), the rounds submitted and what became of them, decision time p50/p90; periods whose first day is from first to last.
SELECT period_start, kind, submitted, approved, rejected, canceled, superseded, parked,
       dismissed, pending, running, decision_p50_seconds, decision_p90_seconds
  FROM syncd.stats_by_period
 WHERE period = %(period)s::text AND period_start BETWEEN %(first)s::date AND %(last)s::date
   AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
 ORDER BY period_start, kind;

-- select_stats_by_node --
-- syncd report --by node: per period, kind and node, the visits of rounds submitted in the period by outcome, the wait at the node p50/p90, the oldest visit still waiting.
SELECT period_start, kind, node, visits, passed, refused, without_decision, waiting,
       wait_p50_seconds, wait_p90_seconds, waiting_since
  FROM syncd.stats_by_node
 WHERE period = %(period)s::text AND period_start BETWEEN %(first)s::date AND %(last)s::date
   AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
 ORDER BY period_start, kind, node;

-- select_stats_by_approver --
-- syncd report --by approver: per period, kind and approver, the tasks of rounds submitted in the period by outcome, the wait for the approver p50/p90, their oldest waiting task.
SELECT period_start, kind, approver, tasks, agreed, refused, without_decision, waiting,
       wait_p50_seconds, wait_p90_seconds, waiting_since
  FROM syncd.stats_by_approver
 WHERE period = %(period)s::text AND period_start BETWEEN %(first)s::date AND %(last)s::date
   AND (%(kind)s::text IS NULL OR kind = %(kind)s::text)
 ORDER BY period_start, kind, approver;

-- ---------------------------------------------------------------------------------------
-- Live status (migration 0008): the business row follows unfinished rounds.

-- begin_writeback --
-- Mark this transaction as syncd's write-back: capture triggers write no outbox row for
-- the business rows it updates (syncd.capture_row() reads the setting).
SELECT pg_catalog.set_config('syncd.writing_back', 'on', true);

-- select_due_progress --
-- Unfinished rounds of these kinds whose latest state is not in their business row yet,
-- due now (coalesced, or retried after a failure). Not locked: lock_progress takes each.
SELECT id FROM syncd.approval
 WHERE kind = ANY(%(kinds)s::text[]) AND progress_seq > progress_written_seq
   AND state IN ('running', 'invalid', 'dead')
   AND (progress_next_at IS NULL OR progress_next_at <= %(now)s)
 ORDER BY progress_next_at NULLS FIRST, id
 LIMIT %(limit)s;

-- lock_progress --
-- Take one round's unwritten progress for writing, if still due: the approval locked
-- against a final transition (skipped while its final outcome is being written; events
-- touching it go on), the business key serialised against other progress writes of the
-- key (a wait bounded by theirs), then the transaction's lock waits bounded and the
-- transaction marked as syncd's write-back.
SELECT a.id,
       pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(a.kind),
                                        pg_catalog.hashtext(a.business_key))::text AS key_lock,
       pg_catalog.set_config('lock_timeout', %(lock_timeout)s, true) AS lock_timeout,
       pg_catalog.set_config('syncd.writing_back', 'on', true) AS writing_back
  FROM syncd.approval a
 WHERE a.id = %(id)s AND a.progress_seq > a.progress_written_seq
   AND a.state IN ('running', 'invalid', 'dead')
   AND (a.progress_next_at IS NULL OR a.progress_next_at <= %(now)s)
   FOR KEY SHARE OF a SKIP LOCKED;

-- select_progress --
-- A locked round as its business row may show it: its state and version, the time the
-- state came about (the latest task time DingTalk gave while running, else when syncd
-- recorded it), the reason it is parked, its links, the nodes of its running tasks (names,
-- else ids) and their approvers, whether any task is known, and whether a later round of
-- the key has taken the row over (it left pending, or showed itself). Nothing when another
-- writer wrote it meanwhile.
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.progress_seq AS seq, a.instance_id,
       CASE WHEN a.state = 'running'
            THEN coalesce(t.latest, a.instance_created_at, a.progress_at, a.updated_at)
            ELSE coalesce(a.progress_at, a.updated_at) END AS changed_at,
       a.last_error_message, a.url,
       syncd.approval_task_url(a.id, 'pc') AS task_pc_url,
       syncd.approval_task_url(a.id, 'mobile') AS task_mobile_url,
       coalesce(t.nodes, '{}') AS current_nodes, coalesce(t.approvers, '{}') AS pending,
       t.tasks > 0 AS has_tasks, syncd.approval_written_comments(a.id) AS comments,
       EXISTS (SELECT 1 FROM syncd.approval n
                WHERE n.kind = a.kind AND n.business_key = a.business_key AND n.round > a.round
                  AND (n.state NOT IN ('pending', 'submitting', 'unknown')
                       OR n.progress_written_at IS NOT NULL)) AS superseded,
       a.progress_attempts AS attempts
  FROM syncd.approval a
 CROSS JOIN LATERAL (
       SELECT count(*) AS tasks,
              max(greatest(k.started_at, k.finished_at)) AS latest,
              array_agg(DISTINCT coalesce(k.activity_name, k.activity_id))
                  FILTER (WHERE k.status = 'RUNNING'
                            AND coalesce(k.activity_name, k.activity_id) IS NOT NULL) AS nodes,
              array_agg(DISTINCT k.user_id)
                  FILTER (WHERE k.status = 'RUNNING' AND k.user_id IS NOT NULL) AS approvers
         FROM syncd.task k
        WHERE k.approval_id = a.id AND k.record_type = 'task') t
 WHERE a.id = %(id)s AND a.progress_seq > a.progress_written_seq;

-- mark_progress_written --
-- The round's progress up to seq is in its business row (written) or needs no write (a
-- state the kind does not show, a later round shown): nothing due until the next change.
UPDATE syncd.approval
   SET progress_written_seq = greatest(progress_written_seq, %(seq)s),
       progress_written_at = CASE WHEN %(written)s THEN %(now)s ELSE progress_written_at END,
       progress_attempts = 0, progress_error = NULL, progress_next_at = NULL
 WHERE id = %(id)s;

-- record_progress_failed --
-- Writing the round's progress failed: the error, one more attempt, the next at retry_at;
-- at max_attempts the change is given up (the round's next change is tried once more).
-- Returns whether it was given up.
UPDATE syncd.approval
   SET progress_attempts = progress_attempts + 1, progress_error = %(error)s,
       progress_next_at = CASE WHEN progress_attempts + 1 >= %(max_attempts)s
                               THEN NULL ELSE %(retry_at)s::timestamptz END,
       progress_written_seq = CASE WHEN progress_attempts + 1 >= %(max_attempts)s
                                   THEN greatest(progress_written_seq, %(seq)s)
                                   ELSE progress_written_seq END
 WHERE id = %(id)s AND progress_seq > progress_written_seq
RETURNING progress_attempts >= %(max_attempts)s AS gave_up;

-- record_polled_progress --
-- A poll found the instance still running and recorded its tasks: a change the business
-- row may show, due now unless a write is pending already.
UPDATE syncd.approval
   SET progress_seq = progress_seq + 1, progress_at = %(now)s,
       progress_next_at = CASE WHEN progress_seq > progress_written_seq
                               THEN progress_next_at ELSE %(now)s END
 WHERE id = %(id)s AND state = 'running';

-- save_directory_users --
-- Upsert users read from DingTalk at read_at (a JSON array of objects with the columns):
-- a read older than the row's own changes nothing. A user present again loses left_at.
-- Returns the users written, whose memberships the caller replaces.
INSERT INTO syncd.dingtalk_user AS u
       (user_id, union_id, name, job_number, mobile, email, org_email, activated, read_at,
        sync_id, left_at, left_hashes)
SELECT x.user_id, x.union_id, x.name, x.job_number, x.mobile, x.email, x.org_email,
       x.activated, %(read_at)s, %(sync_id)s, NULL, NULL
  FROM jsonb_to_recordset(%(users)s::jsonb) AS x(
       user_id text, union_id text, name text, job_number text, mobile text, email text,
       org_email text, activated boolean)
ON CONFLICT (user_id) DO UPDATE
   SET union_id = EXCLUDED.union_id, name = EXCLUDED.name, job_number = EXCLUDED.job_number,
       mobile = EXCLUDED.mobile, email = EXCLUDED.email, org_email = EXCLUDED.org_email,
       activated = EXCLUDED.activated, read_at = EXCLUDED.read_at,
       sync_id = coalesce(EXCLUDED.sync_id, u.sync_id), left_at = NULL, left_hashes = NULL
 WHERE u.read_at <= EXCLUDED.read_at
RETURNING u.user_id;

-- replace_directory_memberships --
-- The departments of the users just written (a JSON array of {user_id, dept_id}).
WITH wanted AS (
    SELECT DISTINCT x.user_id, x.dept_id
      FROM jsonb_to_recordset(%(memberships)s::jsonb) AS x(user_id text, dept_id bigint)
     WHERE x.user_id = ANY(%(user_ids)s::text[])
), gone AS (
    DELETE FROM syncd.dingtalk_membership m
     WHERE m.user_id = ANY(%(user_ids)s::text[])
       AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.user_id = m.user_id AND w.dept_id = m.dept_id)
)
INSERT INTO syncd.dingtalk_membership (user_id, dept_id)
SELECT user_id, dept_id FROM wanted
ON CONFLICT DO NOTHING;

-- save_directory_departments --
-- Upsert departments read at read_at; an older read changes nothing.
INSERT INTO syncd.dingtalk_department AS d (dept_id, parent_id, name, read_at, sync_id, removed_at)
SELECT x.dept_id, x.parent_id, x.name, %(read_at)s, %(sync_id)s, NULL
  FROM jsonb_to_recordset(%(departments)s::jsonb) AS x(dept_id bigint, parent_id bigint, name text)
ON CONFLICT (dept_id) DO UPDATE
   SET parent_id = EXCLUDED.parent_id, name = EXCLUDED.name, read_at = EXCLUDED.read_at,
       sync_id = coalesce(EXCLUDED.sync_id, d.sync_id), removed_at = NULL
 WHERE d.read_at <= EXCLUDED.read_at
RETURNING d.dept_id;

-- directory_users_left --
-- Users DingTalk no longer finds, as of read_at: their job number, mobile and emails are
-- erased (only hashes kept, so a look-up can say "departed"), their memberships dropped.
-- A user read present after read_at is left alone; an unknown user is remembered as gone
-- (so an older read cannot bring them back). Returns the present users who left now.
WITH present AS (
    SELECT user_id FROM syncd.dingtalk_user
     WHERE user_id = ANY(%(user_ids)s::text[]) AND left_at IS NULL AND read_at <= %(read_at)s
), left_now AS (
    INSERT INTO syncd.dingtalk_user AS u (user_id, read_at, left_at, left_hashes)
    SELECT DISTINCT x.user_id, %(read_at)s::timestamptz, %(read_at)s::timestamptz, '{}'::text[]
      FROM unnest(%(user_ids)s::text[]) AS x(user_id)
    ON CONFLICT (user_id) DO UPDATE
       SET left_at = coalesce(u.left_at, EXCLUDED.left_at), read_at = EXCLUDED.read_at,
           left_hashes = CASE WHEN u.left_at IS NOT NULL THEN u.left_hashes ELSE ARRAY(
               SELECT DISTINCT encode(sha256(convert_to(h.key, 'UTF8')), 'hex')
                 FROM unnest(ARRAY['job_number:' || u.job_number, 'mobile:' || u.mobile,
                                   'email:' || u.email, 'email:' || u.org_email]) AS h(key)
                WHERE h.key IS NOT NULL
                ORDER BY 1) END,
           job_number = NULL, mobile = NULL, email = NULL, org_email = NULL
     WHERE u.read_at <= EXCLUDED.read_at
    RETURNING u.user_id
), memberships AS (
    DELETE FROM syncd.dingtalk_membership m USING left_now l WHERE m.user_id = l.user_id
)
SELECT user_id FROM left_now WHERE user_id IN (SELECT user_id FROM present);

-- directory_departments_removed --
-- Departments DingTalk no longer has, as of read_at (an unknown one is remembered as
-- removed, so an older read cannot bring it back). Returns those removed now.
WITH present AS (
    SELECT dept_id FROM syncd.dingtalk_department
     WHERE dept_id = ANY(%(dept_ids)s::bigint[]) AND removed_at IS NULL
       AND read_at <= %(read_at)s
), removed AS (
    INSERT INTO syncd.dingtalk_department AS d (dept_id, name, read_at, removed_at)
    SELECT DISTINCT x.dept_id, '', %(read_at)s::timestamptz, %(read_at)s::timestamptz
      FROM unnest(%(dept_ids)s::bigint[]) AS x(dept_id)
    ON CONFLICT (dept_id) DO UPDATE
       SET removed_at = coalesce(d.removed_at, EXCLUDED.removed_at), read_at = EXCLUDED.read_at
     WHERE d.read_at <= EXCLUDED.read_at
    RETURNING d.dept_id
)
SELECT dept_id FROM removed WHERE dept_id IN (SELECT dept_id FROM present);

-- dirsync: the directory's full sync (syncd.directory_sync), its schedule and status.

-- begin_directory_sync --
-- A new full sync, leased to its owner; nothing when one is running (the unique index).
INSERT INTO syncd.directory_sync (trigger, started_at, lease_owner, lease_until)
VALUES (%(trigger)s, %(now)s, %(owner)s, %(until)s)
ON CONFLICT ((true)) WHERE state = 'running' DO NOTHING
RETURNING *;

-- claim_directory_sync --
-- The running sync for its owner: free, its lease passed, or the owner's own; with
-- retry_due, only once its retry time has come.
UPDATE syncd.directory_sync
   SET lease_owner = %(owner)s, lease_until = %(until)s
 WHERE state = 'running'
   AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_until <= %(now)s)
   AND (NOT %(retry_due)s OR retry_at IS NULL OR retry_at <= %(now)s)
RETURNING *;

-- advance_directory_sync --
-- One step of a sync: its new position, the departments and users it saw for the first
-- time (counted before they are saved, in the same transaction), its calls; the lease
-- extended. Nothing when another owner holds the sync.
UPDATE syncd.directory_sync s
   SET queue = %(queue)s::bigint[], cursor = %(cursor)s, attempts = 0, retry_at = NULL,
       lease_until = %(until)s, calls = s.calls + %(calls)s,
       departments = s.departments + cardinality(%(dept_ids)s::bigint[]) - (
           SELECT count(*) FROM syncd.dingtalk_department d
            WHERE d.dept_id = ANY(%(dept_ids)s::bigint[]) AND d.sync_id = s.id),
       users = s.users + cardinality(%(user_ids)s::text[]) - (
           SELECT count(*) FROM syncd.dingtalk_user u
            WHERE u.user_id = ANY(%(user_ids)s::text[]) AND u.sync_id = s.id)
 WHERE s.id = %(id)s AND s.state = 'running' AND s.lease_owner = %(owner)s
RETURNING s.*;

-- unseen_directory_users --
-- Present users a sync has not seen, last read before it started.
SELECT user_id FROM syncd.dingtalk_user
 WHERE left_at IS NULL AND sync_id IS DISTINCT FROM %(id)s AND read_at < %(started_at)s
 ORDER BY user_id
 LIMIT %(limit)s;

-- unseen_directory_departments --
-- Present departments a sync has not seen, last read before it started.
SELECT dept_id FROM syncd.dingtalk_department
 WHERE removed_at IS NULL AND sync_id IS DISTINCT FROM %(id)s AND read_at < %(started_at)s
 ORDER BY dept_id
 LIMIT %(limit)s;

-- finish_directory_sync --
-- The sync is done: its lease ends.
UPDATE syncd.directory_sync
   SET state = 'done', finished_at = %(now)s, queue = '{}', cursor = 0, attempts = 0,
       retry_at = NULL, lease_owner = NULL, lease_until = NULL
 WHERE id = %(id)s AND state = 'running' AND lease_owner = %(owner)s
RETURNING *;

-- fail_directory_sync --
-- A step failed: the error shown, one more attempt, the lease given up until retry_at.
UPDATE syncd.directory_sync
   SET attempts = attempts + 1, last_error = %(error)s, retry_at = %(retry_at)s,
       calls = calls + %(calls)s, lease_owner = NULL, lease_until = NULL
 WHERE id = %(id)s AND state = 'running' AND lease_owner = %(owner)s;

-- release_directory_sync --
-- The owner stops: the sync may be resumed by anyone at once.
UPDATE syncd.directory_sync
   SET lease_owner = NULL, lease_until = NULL
 WHERE id = %(id)s AND state = 'running' AND lease_owner = %(owner)s;

-- latest_directory_syncs --
-- The running sync and the last one done.
SELECT * FROM syncd.directory_sync
 WHERE state = 'running'
    OR id = (SELECT max(id) FROM syncd.directory_sync WHERE state = 'done')
 ORDER BY id;

-- forget_departed_users --
-- Departed users (and tombstones) who left before the cutoff: their rows deleted, in
-- bounded batches.
DELETE FROM syncd.dingtalk_user
 WHERE user_id IN (SELECT user_id FROM syncd.dingtalk_user
                    WHERE left_at IS NOT NULL AND left_at < %(before)s
                    LIMIT %(limit)s);

-- directory_counts --
-- The directory's size (syncd directory status, the directory gauges).
SELECT (SELECT count(*) FROM syncd.dingtalk_user WHERE left_at IS NULL) AS present,
       (SELECT count(*) FROM syncd.dingtalk_user WHERE left_at IS NOT NULL) AS departed,
       (SELECT count(*) FROM syncd.dingtalk_department WHERE removed_at IS NULL) AS departments,
       (SELECT max(finished_at) FROM syncd.directory_sync WHERE state = 'done') AS last_sync_at;

-- ---------------------------------------------------------------------------------------
-- lookup (issue 17): people named by job number, mobile or email, translated at submit.
-- ---------------------------------------------------------------------------------------

-- directory_last_full_sync --
-- When the directory's latest full sync finished (NULL: none has yet).
SELECT max(finished_at) AS finished_at FROM syncd.directory_sync WHERE state = 'done';

-- lookup_directory_users --
-- Who holds each value (normal form) as their job number, mobile or email (by): present
-- users by the value, departed ones by its hash in their left_hashes (values[i] and
-- hashes[i] go together). One row per (value, user).
WITH v AS (
    SELECT x.value, x.hash
      FROM unnest(%(values)s::text[], %(hashes)s::text[]) AS x(value, hash)
), present AS (
    SELECT v.value, u.user_id, u.name FROM v JOIN syncd.dingtalk_user u ON u.job_number = v.value
     WHERE %(by)s::text = 'job_number' AND u.left_at IS NULL
    UNION
    SELECT v.value, u.user_id, u.name FROM v JOIN syncd.dingtalk_user u ON u.mobile = v.value
     WHERE %(by)s::text = 'mobile' AND u.left_at IS NULL
    UNION
    SELECT v.value, u.user_id, u.name FROM v JOIN syncd.dingtalk_user u ON u.email = v.value
     WHERE %(by)s::text = 'email' AND u.left_at IS NULL
    UNION
    SELECT v.value, u.user_id, u.name FROM v JOIN syncd.dingtalk_user u ON u.org_email = v.value
     WHERE %(by)s::text = 'email' AND u.left_at IS NULL
)
SELECT value, user_id, name, false AS departed FROM present
UNION ALL
SELECT v.value, u.user_id, u.name, true
  FROM v JOIN syncd.dingtalk_user u
    ON u.left_hashes IS NOT NULL AND u.left_hashes @> ARRAY[v.hash]
 WHERE u.left_at IS NOT NULL
 ORDER BY 1, 2;

-- lookup_directory_departments --
-- Present departments named name, each with its path of names from the top (the root's
-- first when the chain reaches it: complete).
WITH RECURSIVE up AS (
    SELECT d.dept_id AS found, d.parent_id, ARRAY[d.name] AS path, 0 AS depth
      FROM syncd.dingtalk_department d
     WHERE d.name = %(name)s AND d.removed_at IS NULL
    UNION ALL
    SELECT up.found, p.parent_id, p.name || up.path, up.depth + 1
      FROM up JOIN syncd.dingtalk_department p ON p.dept_id = up.parent_id
     WHERE up.depth < 64 AND p.removed_at IS NULL
)
SELECT DISTINCT ON (found) found AS dept_id, path, parent_id IS NULL AS complete
  FROM up
 ORDER BY found, depth DESC;

-- directory_membership --
-- Whether a present user belongs to a department, and whether the directory knows both
-- (a user with no department at all is not known well enough to say).
SELECT EXISTS (SELECT 1 FROM syncd.dingtalk_membership m
                WHERE m.user_id = %(user_id)s AND m.dept_id = %(dept_id)s) AS member,
       EXISTS (SELECT 1 FROM syncd.dingtalk_user u
                WHERE u.user_id = %(user_id)s AND u.left_at IS NULL
                  AND EXISTS (SELECT 1 FROM syncd.dingtalk_membership m
                               WHERE m.user_id = u.user_id)) AS user_known,
       EXISTS (SELECT 1 FROM syncd.dingtalk_department d
                WHERE d.dept_id = %(dept_id)s AND d.removed_at IS NULL) AS dept_known;

-- select_mobile_ask --
-- The by-mobile question asked about this mobile (by hash) since the latest full sync
-- finished, if any: its answer stands until a later full sync.
SELECT q.asked_at, q.user_id
  FROM syncd.directory_mobile_ask q
 WHERE q.mobile_hash = %(hash)s
   AND q.asked_at >= coalesce((SELECT max(s.finished_at) FROM syncd.directory_sync s
                                WHERE s.state = 'done'), '-infinity'::timestamptz);

-- save_mobile_ask --
-- Record a by-mobile question and DingTalk's answer (NULL: nobody present has it).
INSERT INTO syncd.directory_mobile_ask (mobile_hash, asked_at, user_id)
VALUES (%(hash)s, %(asked_at)s, %(user_id)s)
ON CONFLICT (mobile_hash) DO UPDATE
   SET asked_at = EXCLUDED.asked_at, user_id = EXCLUDED.user_id
 WHERE syncd.directory_mobile_ask.asked_at <= EXCLUDED.asked_at;

-- ---- 0014: the relay from business databases (syncd/db/relay_store.py) ----

-- try_lock_relay --
-- One replica at a time relays a business database (transaction lock per database name), which keeps its rows in id order.
SELECT pg_try_advisory_xact_lock(495891964, hashtext(%(database)s)) AS locked;

-- relay_outbox_rows --
-- A business database's outbox rows (a JSON array), each inserted once by (database, source id); the payload is the JSON text as that database held it. Returns the source ids inserted now.
INSERT INTO syncd.outbox
       (created_at, kind, business_key, action, payload, originator, request_id,
        source_database, source_id)
SELECT r.created_at, r.kind, r.business_key, r.action, coalesce(r.payload, 'null')::jsonb,
       r.originator,
       %(database)s || ':' || r.request_id, %(database)s, r.source_id
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS r (source_id bigint, created_at timestamptz,
       kind text, business_key text, action text, payload text, originator text,
       request_id text)
 ORDER BY r.source_id
    ON CONFLICT (source_database, source_id) DO NOTHING
RETURNING source_id;

-- relay_refused_row --
-- A row PostgreSQL refused: a stand-in (its texts cleaned, its payload the JSON text as a string), consumed and quarantined with the error. Nothing when the row is there already.
WITH o AS (
    INSERT INTO syncd.outbox
           (created_at, kind, business_key, action, payload, originator, source_database,
            source_id, consumed_at)
    VALUES (%(created_at)s, %(kind)s, %(business_key)s, %(action)s, to_jsonb(%(payload)s::text),
            %(originator)s, %(database)s, %(source_id)s, %(now)s)
    ON CONFLICT (source_database, source_id) DO NOTHING
    RETURNING id, kind, business_key
)
INSERT INTO syncd.outbox_quarantine
       (outbox_id, kind, business_key, error_code, error_message, quarantined_at)
SELECT o.id, left(o.kind, 128), left(o.business_key, 512), %(error_code)s, %(error_message)s,
       %(now)s
  FROM o
RETURNING outbox_id;

-- record_relay_position --
-- The relay's position in a business database: the highest id relayed, rows relayed, when.
INSERT INTO syncd.outbox_source AS s (database, last_id, relayed, relayed_at)
VALUES (%(database)s, %(last_id)s, %(relayed)s, %(now)s)
    ON CONFLICT (database) DO UPDATE
   SET last_id = greatest(s.last_id, EXCLUDED.last_id),
       relayed = s.relayed + EXCLUDED.relayed,
       relayed_at = EXCLUDED.relayed_at;

-- select_relay_positions --
-- Per business database: the relay's position (syncd status).
SELECT database, last_id, relayed, relayed_at
  FROM syncd.outbox_source
 ORDER BY database;

-- ======================================================================================
-- direvents (issue 17): contact-change events into the directory
-- ======================================================================================

-- select_approvals_people_left --
-- Unfinished approvals (submitting, running, unknown) whose originator, or the holder of
-- one of their running tasks, is among the users the directory has as departed now,
-- with the note each gets; one already noted for that person is left out (a leave
-- learned twice is noted once). The originator's DingTalk userId is the one the create
-- was sent with (originator_user_id), else the originator column (a kind naming them by
-- userId).
WITH gone AS (
    SELECT user_id FROM syncd.dingtalk_user
     WHERE user_id = ANY(%(user_ids)s::text[]) AND left_at IS NOT NULL
), touched AS (
    SELECT a.id, g.user_id, 'originator' AS role,
           'originator ' || g.user_id
           || ' left the organisation; DingTalk goes on with the instance' AS message
      FROM gone g
      JOIN syncd.approval a ON coalesce(a.originator_user_id, a.originator) = g.user_id
     WHERE a.state IN ('submitting', 'running', 'unknown')
    UNION
    SELECT a.id, g.user_id, 'approver',
           'approver ' || g.user_id
           || ' left the organisation; DingTalk passes their task on as its settings say'
      FROM gone g
      JOIN syncd.task t ON t.user_id = g.user_id
                       AND t.status = 'RUNNING' AND t.record_type = 'task'
      JOIN syncd.approval a ON a.id = t.approval_id
     WHERE a.state IN ('submitting', 'running', 'unknown')
)
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.instance_created_at,
       x.user_id, x.role, x.message
  FROM touched x
  JOIN syncd.approval a ON a.id = x.id
 WHERE NOT EXISTS (
       SELECT 1 FROM syncd.approval_event e
        WHERE e.approval_id = x.id AND e.event_type = 'note' AND e.message = x.message)
 ORDER BY a.id, x.role DESC, x.user_id;

-- select_attachments --
-- The files already committed into DingTalk for an approval round, by component and index.
SELECT component, file_index, space_id, file_id, file_name, file_size, file_type
  FROM syncd.attachment
 WHERE approval_id = %(approval_id)s
 ORDER BY component, file_index;

-- insert_attachment --
-- Record one committed file (a file recorded already stays as it was).
INSERT INTO syncd.attachment (approval_id, component, file_index, space_id, file_id,
                              file_name, file_size, file_type, uploaded_by, uploaded_at)
VALUES (%(approval_id)s, %(component)s, %(file_index)s, %(space_id)s, %(file_id)s,
        %(file_name)s, %(file_size)s, %(file_type)s, %(uploaded_by)s, %(now)s)
ON CONFLICT (approval_id, component, file_index) DO NOTHING;

-- select_comment_files --
-- The files committed for an outgoing comment already (attachments on comments, 0019).
SELECT file_index, space_id, file_id, file_name, file_size, file_type
  FROM syncd.comment_file WHERE comment_id = %(comment_id)s;

-- insert_comment_file --
-- One file committed for an outgoing comment: recorded at once, so a retry reuses it.
INSERT INTO syncd.comment_file
       (comment_id, file_index, space_id, file_id, file_name, file_size, file_type,
        uploaded_by, uploaded_at)
VALUES (%(comment_id)s, %(file_index)s, %(space_id)s, %(file_id)s, %(file_name)s,
        %(file_size)s, %(file_type)s, %(uploaded_by)s, %(now)s);

-- upload_begun --
-- A file's upload begins (0021): noted, or its attempts counted; the first attempt's time,
-- and how many attempts began (more than 1: an earlier one may have committed the file).
INSERT INTO syncd.upload_intent AS u (approval_id, slot, begun_at)
VALUES (%(approval_id)s, %(slot)s, %(now)s)
ON CONFLICT (approval_id, slot) DO UPDATE SET attempts = u.attempts + 1
RETURNING begun_at, attempts;

-- upload_recorded --
-- The committed file is recorded: its upload is no longer in doubt (0021).
DELETE FROM syncd.upload_intent WHERE approval_id = %(approval_id)s AND slot = %(slot)s;

-- select_union_id --
-- The unionId of a present DingTalk user, from the directory.
SELECT union_id FROM syncd.dingtalk_user WHERE user_id = %(user_id)s AND left_at IS NULL;

-- select_user_left_at --
-- When the directory saw a DingTalk user leave (no row: present, or never known).
SELECT left_at FROM syncd.dingtalk_user WHERE user_id = %(user_id)s AND left_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- Comments (migration 0016): outbox rows with action 'comment', sent by the comment stage.
-- ---------------------------------------------------------------------------------------

-- insert_comments --
-- Comments ingest decided (a JSON array of objects): waiting to be sent, or failed at once
-- with the reason (a payload syncd cannot send).
INSERT INTO syncd.comment
       (approval_id, outbox_id, user_id, text, files, state, last_error_code,
        last_error_message, created_at, next_attempt_at, updated_at)
SELECT c.approval_id, c.outbox_id, c.user_id, c.text,
       CASE WHEN c.error IS NULL THEN c.files END,
       CASE WHEN c.error IS NULL THEN 'waiting' ELSE 'failed' END,
       CASE WHEN c.error IS NULL THEN NULL ELSE 'bad_comment' END, c.error,
       %(now)s, %(now)s, %(now)s
  FROM jsonb_to_recordset(%(comments)s::jsonb)
       AS c (approval_id bigint, outbox_id bigint, user_id text, text text, files jsonb,
             error text, n integer)
 ORDER BY c.n;

-- drop_finished_comments --
-- Waiting comments whose round ended without them (finished, parked or dismissed before
-- its instance took them): dropped, with a note in the round's history. Not one in doubt:
-- the comment stage reads the instance first (it may have arrived).
WITH dropped AS (
    UPDATE syncd.comment c
       SET state = 'dropped', lease_owner = NULL, lease_expires_at = NULL,
           files = (SELECT jsonb_agg(f.e - 'content_base64' ORDER BY f.n)
                      FROM jsonb_array_elements(c.files) WITH ORDINALITY AS f (e, n)),
           last_error_code = 'finished',
           last_error_message = 'not sent: the approval is already ' || a.state,
           updated_at = %(now)s
      FROM syncd.approval a
     WHERE a.id = c.approval_id AND c.state = 'waiting' AND NOT c.in_doubt
       AND a.state NOT IN ('pending', 'submitting', 'running', 'unknown')
       AND (c.lease_expires_at IS NULL OR c.lease_expires_at < %(now)s)
    RETURNING c.id, c.approval_id, c.outbox_id, a.state
), logged AS (
    INSERT INTO syncd.approval_event (approval_id, at, event_type, message, actor)
    SELECT approval_id, %(now)s, 'note',
           'comment ' || id || coalesce(' (outbox row ' || outbox_id || ')', '')
           || ' not sent: the approval is already ' || state, %(actor)s
      FROM dropped ORDER BY id
)
SELECT count(*) AS dropped FROM dropped;

-- claim_comments --
-- The oldest waiting comment of each running approval (comments go out in order), or in
-- doubt whatever the approval's state, due and not leased; takes a lease and marks it in doubt before any send (the intent). Returns
-- whether an earlier attempt was already in doubt.
WITH due AS (
    SELECT c.id, c.in_doubt
      FROM syncd.comment c
      JOIN syncd.approval a ON a.id = c.approval_id
     WHERE c.state = 'waiting' AND c.next_attempt_at <= %(now)s
       AND (c.lease_expires_at IS NULL OR c.lease_expires_at < %(now)s)
       AND (a.state = 'running' OR c.in_doubt) AND a.instance_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM syncd.comment e
                        WHERE e.approval_id = c.approval_id AND e.state = 'waiting'
                          AND e.id < c.id)
     ORDER BY c.next_attempt_at, c.id
     LIMIT %(limit)s
       FOR UPDATE OF c SKIP LOCKED
)
UPDATE syncd.comment c
   SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s,
       attempts = c.attempts + 1, in_doubt = true, updated_at = %(now)s
  FROM due, syncd.approval a
 WHERE c.id = due.id AND a.id = c.approval_id
RETURNING c.id, c.approval_id, a.kind, a.business_key, a.instance_id, c.text, c.user_id,
          coalesce(a.originator_user_id, a.originator) AS originator_user_id,
          due.in_doubt, c.attempts, c.files;

-- count_sent_comments --
-- How many of an approval's comments syncd knows it sent as this user with this text.
SELECT count(*) AS sent FROM syncd.comment
 WHERE approval_id = %(approval_id)s AND state = 'sent' AND sent_as = %(user_id)s
   AND text = %(text)s;

-- finish_comment --
-- A claimed comment is done: sent (as the userId given), or failed for good (DingTalk
-- refused it, or its user cannot be named); the calls it took count on its approval. Its
-- files keep their names, paths and URLs, not the bytes a payload carried.
WITH done AS (
    UPDATE syncd.comment
       SET state = %(state)s, sent_as = %(sent_as)s,
           files = (SELECT jsonb_agg(f.e - 'content_base64' ORDER BY f.n)
                      FROM jsonb_array_elements(files) WITH ORDINALITY AS f (e, n)),
           sent_at = CASE WHEN %(state)s = 'sent' THEN %(now)s END,
           in_doubt = false, lease_owner = NULL, lease_expires_at = NULL,
           last_error_code = %(error_code)s, last_error_message = %(error_message)s,
           updated_at = %(now)s
     WHERE id = %(id)s AND state = 'waiting' AND lease_owner = %(owner)s
    RETURNING approval_id
)
UPDATE syncd.approval a SET calls_spent = a.calls_spent + %(calls)s
  FROM done WHERE a.id = done.approval_id
RETURNING a.id;

-- release_comment --
-- A send that did not finish: tried again later; ``in_doubt`` says whether DingTalk may
-- have added it (the next attempt reads the instance's records first).
WITH released AS (
    UPDATE syncd.comment
       SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = %(next_attempt_at)s,
           in_doubt = %(in_doubt)s, last_error_code = %(error_code)s,
           last_error_message = %(error_message)s, updated_at = %(now)s
     WHERE id = %(id)s AND state = 'waiting' AND lease_owner = %(owner)s
    RETURNING approval_id
)
UPDATE syncd.approval a SET calls_spent = a.calls_spent + %(calls)s
  FROM released WHERE a.id = released.approval_id;

-- ---------------------------------------------------------------------------------
-- Ledger retention of business databases (syncd/pipeline/ledger_retention.py)
-- ---------------------------------------------------------------------------------

-- select_unwritten_among --
-- Of these approval ids, those not recorded as written back: their ledger rows stay.
SELECT id FROM syncd.approval
 WHERE id = ANY(%(ids)s::bigint[]) AND written_back_at IS NULL;

-- ---------------------------------------------------------------------------------------
-- Inbound kinds (migration 0018): instances started in DingTalk, imported as rows.

-- queue_inbound --
-- Instances of an inbound kind to import, unless syncd knows them or has them queued.
INSERT INTO syncd.inbound_import (instance_id, kind, process_code, source, next_attempt_at)
SELECT i.id, %(kind)s, %(process_code)s, %(source)s, %(now)s
  FROM unnest(%(instance_ids)s::text[]) AS i(id)
 WHERE NOT EXISTS (SELECT 1 FROM syncd.approval a WHERE a.instance_id = i.id)
ON CONFLICT (instance_id) DO NOTHING;

-- claim_inbound --
-- Due imports, leased to this replica (a replica that died gives them up when it ends).
UPDATE syncd.inbound_import q
   SET lease_owner = %(owner)s, lease_expires_at = %(lease_until)s, attempts = q.attempts + 1
 WHERE q.instance_id IN (
        SELECT instance_id FROM syncd.inbound_import
         WHERE next_attempt_at <= %(now)s
           AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
         ORDER BY next_attempt_at, instance_id
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED)
RETURNING q.instance_id, q.kind, q.process_code, q.source, q.attempts;

-- inbound_creates_in_doubt --
-- Whether a create for this process code is in doubt (it may be the instance's source).
SELECT EXISTS (
    SELECT 1 FROM syncd.approval
     WHERE state IN ('submitting', 'unknown') AND process_code = %(process_code)s
) AS in_doubt;

-- release_inbound --
-- Try an import again later (a create in doubt, a failed read), if still this replica's.
UPDATE syncd.inbound_import
   SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = %(next_attempt_at)s,
       last_error = %(error)s
 WHERE instance_id = %(instance_id)s AND lease_owner = %(owner)s;

-- drop_inbound --
-- An import done, parked or found to be syncd's own: off the queue.
DELETE FROM syncd.inbound_import WHERE instance_id = %(instance_id)s;

-- insert_inbound_approval --
-- The imported instance's round, unless its instance (or its key) is known: then nothing.
INSERT INTO syncd.approval (
    kind, business_key, round, outbox_id, state, process_code, originator,
    originator_user_id, form_values, instance_id, business_id, submitted_at,
    instance_created_at, next_poll_at, last_error_code, last_error_message, created_at,
    captured_at, updated_at, next_attempt_at)
VALUES (
    %(kind)s, %(business_key)s, 1, NULL, %(state)s, %(process_code)s, %(originator)s,
    %(originator)s, %(form_values)s, %(instance_id)s, %(business_id)s, %(now)s,
    %(created_at)s, %(next_poll_at)s, %(error_code)s, %(error_message)s, %(now)s,
    %(now)s, %(now)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- inbound_person --
-- The originator as the directory names them (job number, mobile or email), if known.
SELECT user_id, job_number, mobile, email FROM syncd.dingtalk_user WHERE user_id = %(user_id)s;

-- inbound_column_type --
-- A business column's type, to tell which value did not fit it.
SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = pg_catalog.to_regclass(%(table)s) AND a.attname = %(column)s
   AND a.attnum > 0 AND NOT a.attisdropped;

-- take_backfill --
-- Take (or start) a kind's backfill under a lease; a backfill of another range restarts.
INSERT INTO syncd.inbound_backfill AS b (
    kind, process_code, since, until, window_start, lease_owner, lease_expires_at,
    started_at, updated_at)
VALUES (%(kind)s, %(process_code)s, %(since)s, %(until)s, %(since)s, %(owner)s,
        %(lease_until)s, %(now)s, %(now)s)
ON CONFLICT (kind) DO UPDATE
   SET lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at,
       updated_at = EXCLUDED.updated_at,
       process_code = EXCLUDED.process_code,
       since = EXCLUDED.since,
       until = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                    THEN b.until ELSE EXCLUDED.until END,
       window_start = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                           THEN b.window_start ELSE EXCLUDED.window_start END,
       next_token = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                         THEN b.next_token ELSE 0 END,
       listed = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                     THEN b.listed ELSE 0 END,
       queued = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                     THEN b.queued ELSE 0 END,
       started_at = CASE WHEN b.since = EXCLUDED.since AND b.finished_at IS NULL
                         THEN b.started_at ELSE EXCLUDED.started_at END,
       finished_at = NULL
 WHERE b.lease_owner IS NULL OR b.lease_owner = EXCLUDED.lease_owner
    OR b.lease_expires_at <= %(now)s
RETURNING kind, since, until, window_start, next_token, listed, queued, lease_owner;

-- advance_backfill --
-- One page listed: its ids queued (by queue_inbound, same transaction) and the cursor moved.
UPDATE syncd.inbound_backfill
   SET window_start = %(window_start)s, next_token = %(next_token)s,
       listed = listed + %(listed)s, queued = queued + %(queued)s,
       lease_expires_at = %(lease_until)s, updated_at = %(now)s,
       finished_at = CASE WHEN %(done)s THEN %(now)s END,
       lease_owner = CASE WHEN %(done)s THEN NULL ELSE lease_owner END
 WHERE kind = %(kind)s AND lease_owner = %(owner)s
RETURNING kind;

-- release_backfill --
-- Give up a backfill's lease (interrupted): the next `syncd backfill` resumes it.
UPDATE syncd.inbound_backfill SET lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
 WHERE kind = %(kind)s AND lease_owner = %(owner)s;

-- inbound_table_exists --
-- Whether an inbound kind's business table exists (checked at start).
SELECT pg_catalog.to_regclass(%(table)s) IS NOT NULL AS present;

-- inbound_procedure_exists --
-- Whether an inbound kind's procedure exists (checked at start).
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE p.proname = %(name)s AND p.prokind = 'p'
       AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
) AS present;

-- ---------------------------------------------------------------------------------------
-- Attachments back (migration 0019): files of finished rounds fetched from DingTalk.
-- ---------------------------------------------------------------------------------------

-- claim_attachment_fetches --
-- Finished rounds of the kinds that fetch their files back, not done and due, with the
-- lease taken (a round leased by another replica is skipped); of a kind with a ``since``
-- (a JSON object of kind to timestamp), only rounds finished after it.
WITH due AS (
    SELECT a.id
      FROM syncd.approval a
      LEFT JOIN syncd.attachment_fetch f ON f.approval_id = a.id
     WHERE a.kind = ANY(%(kinds)s)
       AND a.state IN ('approved', 'rejected', 'canceled')
       AND (NOT (%(since)s::jsonb ? a.kind)
            OR a.finished_at > (%(since)s::jsonb ->> a.kind)::timestamptz)
       AND a.instance_id IS NOT NULL
       AND (f.approval_id IS NULL
            OR (f.done_at IS NULL AND f.next_attempt_at <= %(now)s
                AND (f.lease_expires_at IS NULL OR f.lease_expires_at <= %(now)s)))
     ORDER BY a.id
     LIMIT %(limit)s
), claimed AS (
    INSERT INTO syncd.attachment_fetch (approval_id, next_attempt_at, lease_owner,
                                        lease_expires_at)
    SELECT id, %(now)s, %(owner)s, %(lease_until)s FROM due
    ON CONFLICT (approval_id) DO UPDATE
       SET lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at
     WHERE syncd.attachment_fetch.done_at IS NULL
       AND (syncd.attachment_fetch.lease_expires_at IS NULL
            OR syncd.attachment_fetch.lease_expires_at <= %(now)s)
    RETURNING approval_id, attempts
)
SELECT a.id AS approval_id, a.kind, a.business_key, a.round, a.instance_id, c.attempts
  FROM claimed c JOIN syncd.approval a ON a.id = c.approval_id
 ORDER BY a.id;

-- select_attachments_in --
-- The files of a round recorded already (fetched, linked or failed), by fileId.
SELECT file_id FROM syncd.attachment_in WHERE approval_id = %(approval_id)s;

-- insert_attachment_in --
-- Record one file of a round; nothing (no row returned) when it is recorded already.
INSERT INTO syncd.attachment_in (approval_id, file_id, space_id, attached_in, file_name,
                                 file_size, file_type, attached_by, attached_at, state,
                                 stored_as, error_code, error_message, recorded_at)
VALUES (%(approval_id)s, %(file_id)s, %(space_id)s, %(attached_in)s, %(file_name)s,
        %(file_size)s, %(file_type)s, %(attached_by)s, %(attached_at)s, %(state)s,
        %(stored_as)s, %(error_code)s, %(error_message)s, %(now)s)
ON CONFLICT (approval_id, file_id) DO NOTHING
RETURNING approval_id;

-- finish_attachment_fetch --
-- Every file of the round is recorded: done (while this replica holds the lease).
UPDATE syncd.attachment_fetch
   SET done_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL, last_error = NULL
 WHERE approval_id = %(approval_id)s AND lease_owner = %(owner)s;

-- release_attachment_fetch --
-- Some file could not be fetched for now: try the round again at next_attempt_at; or,
-- with give_up (pipeline.max_attempts spent), not again: done, the error kept.
UPDATE syncd.attachment_fetch
   SET attempts = attempts + 1, next_attempt_at = %(next_attempt_at)s,
       lease_owner = NULL, lease_expires_at = NULL, last_error = %(error)s,
       done_at = CASE WHEN %(give_up)s THEN %(now)s ELSE done_at END
 WHERE approval_id = %(approval_id)s AND lease_owner = %(owner)s;

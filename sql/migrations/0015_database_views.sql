-- 0015_database_views: business databases in the DBA views.
-- Which database each row of the DBA views came from: an approval keeps its outbox row's
-- source_database (retention deletes outbox rows), and every DBA view about
-- rows ends with a column `database`: the [databases.<name>] whose syncd_outbox held the
-- row, or 'syncd' for one written into syncd.outbox here (the label the metrics use).
-- Its write-back goes to the kind's database ([kinds.<kind>] database): for a relayed
-- row that is the same one (a row of another database's kind is parked wrong_database).

ALTER TABLE syncd.approval ADD COLUMN source_database text NULL;
COMMENT ON COLUMN syncd.approval.source_database IS
    'The business database ([databases.<name>]) whose syncd_outbox held the row the round came from (syncd.outbox.source_database, kept when retention deletes that row); NULL: written into syncd.outbox.';

UPDATE syncd.approval a
   SET source_database = o.source_database
  FROM syncd.outbox o
 WHERE o.id = a.outbox_id AND o.source_database IS NOT NULL;

CREATE OR REPLACE VIEW syncd.backlog AS
SELECT 'outbox'::text AS stage, o.kind, count(*) AS items, min(o.created_at) AS oldest_at,
       now() - min(o.created_at) AS oldest_age, coalesce(o.source_database, 'syncd') AS database
  FROM syncd.outbox o
 WHERE o.consumed_at IS NULL
 GROUP BY o.kind, coalesce(o.source_database, 'syncd')
UNION ALL
SELECT a.state AS stage, a.kind, count(*) AS items, min(a.captured_at) AS oldest_at,
       now() - min(a.captured_at) AS oldest_age, coalesce(a.source_database, 'syncd')
  FROM syncd.approval a
 WHERE a.state IN ('pending', 'submitting', 'unknown', 'running')
 GROUP BY a.state, a.kind, coalesce(a.source_database, 'syncd');

CREATE OR REPLACE VIEW syncd.stuck AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.attempts, a.captured_at,
       now() - a.captured_at AS age, a.next_attempt_at, a.last_error_code, a.last_error_message,
       coalesce(a.source_database, 'syncd') AS database
  FROM syncd.approval a
 WHERE a.state IN ('pending', 'submitting', 'unknown')
   AND a.captured_at < now() - interval '15 minutes';

CREATE OR REPLACE VIEW syncd.parked AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.attempts,
       a.last_error_code, a.last_error_message, a.outbox_id, a.captured_at, a.updated_at,
       coalesce(a.source_database, 'syncd') AS database
  FROM syncd.approval a
 WHERE a.state IN ('invalid', 'dead');

CREATE OR REPLACE VIEW syncd.unwritten AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.finished_at,
       a.last_error_code, a.last_error_message, coalesce(a.source_database, 'syncd') AS database
  FROM syncd.approval a
 WHERE a.state IN ('approved', 'rejected', 'canceled')
   AND a.written_back_at IS NULL;

CREATE OR REPLACE VIEW syncd.summary AS
SELECT a.kind, a.state, count(*) AS approvals,
       min(a.captured_at) AS oldest_captured_at,
       max(a.updated_at) AS last_change_at,
       sum(a.calls_spent) AS calls_spent,
       coalesce(a.source_database, 'syncd') AS database
  FROM syncd.approval a
 GROUP BY a.kind, a.state, coalesce(a.source_database, 'syncd');

CREATE OR REPLACE VIEW syncd.quarantined AS
SELECT q.outbox_id, q.kind, q.business_key, o.action, q.error_code, q.error_message,
       pg_column_size(o.payload) AS payload_stored_bytes, o.created_at, q.quarantined_at,
       coalesce(o.source_database, 'syncd') AS database, o.source_id
  FROM syncd.outbox_quarantine q
  JOIN syncd.outbox o ON o.id = q.outbox_id;

CREATE OR REPLACE VIEW syncd.progress_unwritten AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.progress_seq, a.progress_written_seq,
       a.progress_attempts, a.progress_next_at, a.progress_error,
       coalesce(a.source_database, 'syncd') AS database
  FROM syncd.approval a
 WHERE a.progress_error IS NOT NULL AND a.state IN ('running', 'invalid', 'dead');

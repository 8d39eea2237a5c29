-- syncd: the whole current schema.
--
-- This file is the truth for readers and DBAs; sql/migrations/ holds the same schema as
-- forward-only steps, and tests/migration proves that both produce the same catalog.
-- Change both in the same commit. Works on PostgreSQL 13 and newer (docs/postgresql.md).

CREATE SCHEMA IF NOT EXISTS syncd;

-- Applied migration versions (maintained by `syncd migrate`).
CREATE TABLE IF NOT EXISTS syncd.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- The public contract: applications and capture triggers write here, syncd reads.
CREATE TABLE syncd.outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    kind          text NOT NULL,
    business_key  text NOT NULL,
    action        text NOT NULL DEFAULT 'submit',
    payload       jsonb NOT NULL DEFAULT '{}',
    originator    text NULL,
    request_id    text NULL UNIQUE,
    consumed_at   timestamptz NULL
);
COMMENT ON TABLE syncd.outbox IS
    'Approval requests written by applications and capture triggers; consumed by syncd ingest.';

-- Claims scan only unconsumed rows, however large the consumed history grows.
CREATE INDEX outbox_unconsumed_idx ON syncd.outbox (id) WHERE consumed_at IS NULL;
-- Retention deletes old consumed rows in created order.
CREATE INDEX outbox_consumed_at_idx ON syncd.outbox (consumed_at) WHERE consumed_at IS NOT NULL;

-- A hint to listening daemons; polling stays the truth. One notification per statement.
CREATE FUNCTION syncd.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('syncd_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify
    AFTER INSERT ON syncd.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION syncd.notify_outbox();

-- One row per approval request round: (kind, business_key, round).
CREATE TABLE syncd.approval (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                text NOT NULL,
    business_key        text NOT NULL,
    round               integer NOT NULL DEFAULT 1,
    outbox_id           bigint NULL,
    state               text NOT NULL DEFAULT 'pending',
    payload             jsonb NOT NULL DEFAULT '{}',
    originator          text NULL,
    dept_id             bigint NULL,
    process_code        text NULL,
    form_values         jsonb NULL,
    instance_id         text NULL,
    business_id         text NULL,
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text NULL,
    lease_expires_at    timestamptz NULL,
    last_error_code     text NULL,
    last_error_message  text NULL,
    dingtalk_status     text NULL,
    dingtalk_result     text NULL,
    calls_spent         integer NOT NULL DEFAULT 0,
    cancel_requested_at timestamptz NULL,
    last_event_at       timestamptz NULL,
    next_poll_at        timestamptz NULL,
    captured_at         timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    submitted_at        timestamptz NULL,
    instance_created_at timestamptz NULL,
    finished_at         timestamptz NULL,
    written_back_at     timestamptz NULL,
    writeback_attempts  integer NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    approver            text NULL,
    remark              text NULL,
    CONSTRAINT approval_round_unique UNIQUE (kind, business_key, round),
    CONSTRAINT approval_state_check CHECK (state IN (
        'pending', 'submitting', 'running', 'approved', 'rejected', 'canceled',
        'invalid', 'dead', 'unknown', 'dismissed')),
    CONSTRAINT approval_round_positive CHECK (round >= 1)
);
COMMENT ON TABLE syncd.approval IS
    'One row per approval request round; state machine pending → submitting → running → terminal.';
COMMENT ON COLUMN syncd.approval.approver IS
    'The last approver who agreed or refused, as DingTalk''s record said when the approval became final.';
COMMENT ON COLUMN syncd.approval.remark IS
    'The last non-empty remark on the instance, as DingTalk''s record said when the approval became final.';

CREATE UNIQUE INDEX approval_instance_idx ON syncd.approval (instance_id)
    WHERE instance_id IS NOT NULL;
-- Claim paths: each partial index covers only the rows a stage can claim.
CREATE INDEX approval_submit_due_idx ON syncd.approval (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX approval_lease_idx ON syncd.approval (lease_expires_at)
    WHERE state IN ('submitting', 'unknown');
CREATE INDEX approval_poll_due_idx ON syncd.approval (next_poll_at)
    WHERE state = 'running';
CREATE INDEX approval_unwritten_idx ON syncd.approval (finished_at)
    WHERE written_back_at IS NULL AND state IN ('approved', 'rejected', 'canceled');
CREATE INDEX approval_parked_idx ON syncd.approval (kind, updated_at)
    WHERE state IN ('invalid', 'dead');
-- Per business key: the active round (resubmit rules, per-key order).
CREATE INDEX approval_active_key_idx ON syncd.approval (kind, business_key)
    WHERE state IN ('pending', 'submitting', 'running', 'unknown');
CREATE INDEX approval_cancel_idx ON syncd.approval (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL AND state IN ('pending', 'running');

-- Append-only history: every transition and every DingTalk call.
CREATE TABLE syncd.approval_event (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id  bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    event_type   text NOT NULL,
    from_state   text NULL,
    to_state     text NULL,
    endpoint     text NULL,
    http_status  integer NULL,
    code         text NULL,
    duration_ms  integer NULL,
    message      text NULL,
    actor        text NULL,
    CONSTRAINT approval_event_type_check CHECK (event_type IN ('transition', 'call', 'note'))
);
CREATE INDEX approval_event_approval_idx ON syncd.approval_event (approval_id, id);

-- Approver tasks and operation records as learned from DingTalk.
CREATE TABLE syncd.task (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id   bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    instance_id   text NOT NULL,
    record_type   text NOT NULL,
    record_key    text NOT NULL,
    activity_id   text NULL,
    user_id       text NULL,
    status        text NULL,
    result        text NULL,
    operation     text NULL,
    remark        text NULL,
    started_at    timestamptz NULL,
    finished_at   timestamptz NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT task_record_unique UNIQUE (approval_id, record_type, record_key),
    CONSTRAINT task_record_type_check CHECK (record_type IN ('task', 'operation'))
);

-- The latest non-empty remark left on an approval's tasks or operation records.
CREATE FUNCTION syncd.approval_remark(approval_id bigint) RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT t.remark FROM syncd.task t
     WHERE t.approval_id = $1 AND t.remark IS NOT NULL AND t.remark <> ''
     ORDER BY t.finished_at DESC NULLS LAST, t.id DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION syncd.approval_remark(bigint) IS
    'The latest non-empty remark on an approval''s tasks or operation records.';

-- The user who last agreed or refused an approval's task.
CREATE FUNCTION syncd.approval_approver(approval_id bigint) RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT t.user_id FROM syncd.task t
     WHERE t.approval_id = $1 AND t.record_type = 'task'
       AND upper(coalesce(t.result, '')) IN ('AGREE', 'REFUSE')
     ORDER BY t.finished_at DESC NULLS LAST, t.id DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION syncd.approval_approver(bigint) IS
    'The user who last agreed or refused one of an approval''s tasks.';

-- Events received from DingTalk, deduplicated by event id (or a stable fallback key).
CREATE TABLE syncd.inbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key     text NOT NULL UNIQUE,
    channel       text NOT NULL,
    event_type    text NOT NULL,
    instance_id   text NULL,
    payload       jsonb NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NULL,
    last_error    text NULL,
    CONSTRAINT inbox_channel_check CHECK (channel IN ('stream', 'callback', 'failed_list', 'poll'))
);
-- New events have no next_attempt_at (due at once, whatever the clocks say); retries and
-- leases do. The claim's order: new events first, then by when they are due; the claim's
-- scan ends at the first event not due yet (migration 0023).
CREATE INDEX inbox_due_idx
    ON syncd.inbox ((coalesce(next_attempt_at, '-infinity'::timestamptz)), id)
    WHERE processed_at IS NULL;
CREATE INDEX inbox_processed_at_idx ON syncd.inbox (processed_at) WHERE processed_at IS NOT NULL;

-- Cluster-wide switches shared by every replica (e.g. the monthly-quota pause).
CREATE TABLE syncd.control (
    name     text PRIMARY KEY,
    reason   text NOT NULL,
    until    timestamptz NULL,
    set_at   timestamptz NOT NULL DEFAULT now(),
    set_by   text NULL
);

-- DingTalk calls spent, per calendar month (China time, as DingTalk counts) and purpose.
CREATE TABLE syncd.usage (
    month    date NOT NULL,
    purpose  text NOT NULL,
    calls    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (month, purpose)
);

-- One row per DingTalk endpoint: the next free call slot (GCRA "theoretical arrival
-- time"). A replica reserves a slot by moving next_slot_at forward by 1/rate in one
-- UPDATE, so slots handed to all replicas together are at least 1/rate apart.
-- After a throttle, the rate cut is shared too (cut_*: see syncd/dingtalk/pacing.py Backoff).
CREATE TABLE syncd.rate_limit (
    endpoint      text PRIMARY KEY,
    next_slot_at  timestamptz NOT NULL DEFAULT now(),
    cut_at        timestamptz NULL,
    cut_peak      float8 NULL CHECK (cut_peak > 0 AND cut_peak <= 1),
    cut_share     float8 NULL CHECK (cut_share > 0 AND cut_share <= 1)
);
COMMENT ON TABLE syncd.rate_limit IS
    'Next free DingTalk call slot per endpoint, shared by all replicas (pacing under the QPS limit).';
COMMENT ON COLUMN syncd.rate_limit.cut_at IS
    'When a replica last cut the rate after DingTalk throttled this endpoint (NULL: never).';
COMMENT ON COLUMN syncd.rate_limit.cut_peak IS
    'The share of the configured rate the climb after the cut flattens out at.';
COMMENT ON COLUMN syncd.rate_limit.cut_share IS
    'The share of the configured rate right after the cut.';

-- Capture triggers installed by `syncd capture add`.
CREATE TABLE syncd.capture (
    kind          text NOT NULL,
    table_schema  text NOT NULL,
    table_name    text NOT NULL,
    trigger_name  text NOT NULL,
    key_column    text NOT NULL,
    when_sql      text NULL,
    cancel_sql    text NULL,
    installed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, table_schema, table_name)
);

-- DBA views.

CREATE VIEW syncd.backlog AS
SELECT 'outbox'::text AS stage, o.kind, count(*) AS items, min(o.created_at) AS oldest_at,
       now() - min(o.created_at) AS oldest_age
  FROM syncd.outbox o
 WHERE o.consumed_at IS NULL
 GROUP BY o.kind
UNION ALL
SELECT a.state AS stage, a.kind, count(*) AS items, min(a.captured_at) AS oldest_at,
       now() - min(a.captured_at) AS oldest_age
  FROM syncd.approval a
 WHERE a.state IN ('pending', 'submitting', 'unknown', 'running')
 GROUP BY a.state, a.kind;

CREATE VIEW syncd.stuck AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.attempts, a.captured_at,
       now() - a.captured_at AS age, a.next_attempt_at, a.last_error_code, a.last_error_message
  FROM syncd.approval a
 WHERE a.state IN ('pending', 'submitting', 'unknown')
   AND a.captured_at < now() - interval '15 minutes';

CREATE VIEW syncd.parked AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.attempts,
       a.last_error_code, a.last_error_message, a.outbox_id, a.captured_at, a.updated_at
  FROM syncd.approval a
 WHERE a.state IN ('invalid', 'dead');

CREATE VIEW syncd.unwritten AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.instance_id, a.finished_at,
       a.last_error_code, a.last_error_message
  FROM syncd.approval a
 WHERE a.state IN ('approved', 'rejected', 'canceled')
   AND a.written_back_at IS NULL;

CREATE VIEW syncd.summary AS
SELECT a.kind, a.state, count(*) AS approvals,
       min(a.captured_at) AS oldest_captured_at,
       max(a.updated_at) AS last_change_at,
       sum(a.calls_spent) AS calls_spent
  FROM syncd.approval a
 GROUP BY a.kind, a.state;

-- ---------------------------------------------------------------------------------------
-- 0004_callback_replay: the replay guard of the HTTP callback endpoint.

-- One row per accepted callback push (check_url included), keyed by its signature
-- (lower-case hex). A push is accepted only if inserting its signature finds none there,
-- in the same statement that stores its event in syncd.inbox, so a replay is refused by
-- every replica and after a restart. A row is kept until its push's timestamp is stale
-- anyway (expires_at = timestamp + events.callback.max_age); a periodic job deletes
-- expired rows.
CREATE TABLE syncd.callback_replay (
    signature   text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX callback_replay_expires_idx ON syncd.callback_replay (expires_at);
COMMENT ON TABLE syncd.callback_replay IS
    'Signatures of accepted DingTalk callback pushes until their timestamp is stale (replay guard shared by all replicas).';

-- ---------------------------------------------------------------------------------------
-- The capture role (migration 0006): capture triggers run as syncd_capture, a NOLOGIN
-- role that may only insert into syncd.outbox; see docs/security.md.
-- ---------------------------------------------------------------------------------------

-- Roles are cluster-wide: it may exist already (another database, or a DBA made it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'syncd_capture') THEN
        BEGIN
            CREATE ROLE syncd_capture NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by the migration of another database
        END;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_catalog.pg_has_role('syncd_capture', 'MEMBER') THEN
        GRANT syncd_capture TO CURRENT_USER;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA syncd TO syncd_capture;
GRANT INSERT ON syncd.outbox TO syncd_capture;

-- The one capture trigger function (args: kind, key column, action); fully qualified.
-- It writes nothing for syncd's own write-backs, whose transactions set
-- syncd.writing_back = on (migration 0008): they never submit a row again.
CREATE FUNCTION syncd.capture_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    row_json pg_catalog.jsonb;
BEGIN
    IF pg_catalog.current_setting('syncd.writing_back', true) OPERATOR(pg_catalog.=) 'on' THEN
        RETURN NULL;
    END IF;
    row_json := pg_catalog.to_jsonb(NEW);
    INSERT INTO syncd.outbox (kind, business_key, action, payload)
    VALUES (TG_ARGV[0],
            COALESCE(pg_catalog.jsonb_extract_path_text(row_json, TG_ARGV[1]), ''),
            TG_ARGV[2],
            row_json);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION syncd.capture_row() IS
    'Capture trigger: writes the row into syncd.outbox as syncd_capture (args: kind, key column, action).';
REVOKE ALL ON FUNCTION syncd.capture_row() FROM PUBLIC;
GRANT CREATE ON SCHEMA syncd TO syncd_capture;
ALTER FUNCTION syncd.capture_row() OWNER TO syncd_capture;
REVOKE CREATE ON SCHEMA syncd FROM syncd_capture;

ALTER FUNCTION syncd.notify_outbox() SET search_path = pg_catalog, pg_temp;

-- ---- 0005: outbox rows the database refused to store ----

-- Outbox rows ingest could not store as an approval even on their own (the database
-- refused the row's data): consumed so the rows behind them go on, kept in syncd.outbox
-- (retention leaves them) until `syncd retry --quarantined` or a DBA removes them.
CREATE TABLE syncd.outbox_quarantine (
    outbox_id       bigint PRIMARY KEY REFERENCES syncd.outbox (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    business_key    text NOT NULL,
    error_code      text NOT NULL,
    error_message   text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE syncd.outbox_quarantine IS
    'Outbox rows the database refused to store as approvals (SQLSTATE and error); the row stays in syncd.outbox.';

CREATE VIEW syncd.quarantined AS
SELECT q.outbox_id, q.kind, q.business_key, o.action, q.error_code, q.error_message,
       pg_column_size(o.payload) AS payload_stored_bytes, o.created_at, q.quarantined_at
  FROM syncd.outbox_quarantine q
  JOIN syncd.outbox o ON o.id = q.outbox_id;

-- ---- 0010: parked rounds an operator closed for good ----

-- `syncd dismiss` moves an invalid or dead round to `dismissed` (listed in
-- approval_state_check above): never sent, retried or counted as parked again; the
-- reason is in its history (syncd.approval_event, with the operator as actor).
COMMENT ON COLUMN syncd.approval.state IS
    'pending → submitting → running → approved | rejected | canceled; parked: invalid, dead (retried to pending by an operator, or closed for good as dismissed); unknown: a create to reconcile.';

-- ---------------------------------------------------------------------------------------
-- Statistics for management (migration 0009): DBA views over rounds, tasks and node visits.
-- ---------------------------------------------------------------------------------------
-- What became of the approval rounds submitted in each period, how long DingTalk's
-- decisions took, and where and with whom approvals waited. Three views hold one row per
-- item (round, approver task, visit of a node); three more sum them per kind and per day,
-- week and month. Every figure belongs to the period in which the application submitted
-- the round (syncd.approval.captured_at, the outbox row's time); periods begin at
-- midnight in the session's time zone (SHOW TimeZone; `syncd report --tz` sets it).

-- One row per approval round, with what became of it so far (outcome):
--   approved, rejected  DingTalk decided
--   canceled            withdrawn: in DingTalk, by a cancel outbox row or `syncd cancel`
--   superseded          replaced by a newer round of the same key: canceled because the
--                       application submitted again (on_resubmit = 'supersede'), or parked
--                       (invalid, dead) and submitted again
--   parked              invalid or dead, and not replaced: waits for a person
--   dismissed           parked, then closed for good by an operator (`syncd dismiss`), and
--                       not replaced
--   pending             not in DingTalk yet (pending, submitting, unknown)
--   running             in DingTalk, not decided yet
-- decision_seconds: from the instance's creation to DingTalk's decision (approved and
-- rejected rounds only; a cancellation is not a decision).
CREATE VIEW syncd.stats_rounds AS
SELECT a.id AS approval_id, a.kind, a.business_key, a.round, a.state,
       CASE
           WHEN a.state IN ('approved', 'rejected') THEN a.state
           WHEN a.state IN ('canceled', 'invalid', 'dead', 'dismissed') AND EXISTS (
                    SELECT 1 FROM syncd.approval n
                     WHERE n.kind = a.kind AND n.business_key = a.business_key
                       AND n.round > a.round
                       AND (a.state <> 'canceled' OR n.created_at <= a.cancel_requested_at))
               THEN 'superseded'
           WHEN a.state = 'canceled' THEN 'canceled'
           WHEN a.state IN ('invalid', 'dead') THEN 'parked'
           WHEN a.state = 'dismissed' THEN 'dismissed'
           WHEN a.state IN ('pending', 'submitting', 'unknown') THEN 'pending'
           ELSE a.state
       END AS outcome,
       a.captured_at AS submitted_at, a.instance_created_at, a.finished_at,
       CASE WHEN a.state IN ('approved', 'rejected') AND a.finished_at IS NOT NULL THEN
           greatest(0, extract(epoch FROM a.finished_at
                                          - coalesce(a.instance_created_at, a.captured_at)))::float8
       END AS decision_seconds
  FROM syncd.approval a;
COMMENT ON VIEW syncd.stats_rounds IS
    'One row per approval round: its outcome so far and, when DingTalk decided, how long that took.';

-- One row per approver task (tasks DingTalk lists as NEW have not reached anyone yet):
--   agreed, refused     the approver decided
--   waiting             still with the approver (the approval is running)
--   without_decision    ended without this approver's decision: another approver of the
--                       node decided, the task was passed on, or the approval ended
-- ended_at: DingTalk's finish time, else the approval's end (a task ends with its
-- approval); wait_seconds: from the task's start to its end, when both are known.
CREATE VIEW syncd.stats_tasks AS
SELECT s.task_id, s.approval_id, s.kind, s.submitted_at, s.node, s.approver, s.outcome,
       s.started_at, s.ended_at,
       CASE WHEN s.outcome <> 'waiting' AND s.ended_at IS NOT NULL AND s.started_at IS NOT NULL
            THEN greatest(0, extract(epoch FROM s.ended_at - s.started_at))::float8
       END AS wait_seconds
  FROM (SELECT t.id AS task_id, t.approval_id, a.kind, a.captured_at AS submitted_at,
               t.activity_id AS node, t.user_id AS approver,
               CASE
                   WHEN upper(t.result) = 'AGREE' THEN 'agreed'
                   WHEN upper(t.result) = 'REFUSE' THEN 'refused'
                   WHEN t.finished_at IS NULL AND a.state = 'running'
                        AND coalesce(t.status, 'RUNNING') = 'RUNNING' THEN 'waiting'
                   ELSE 'without_decision'
               END AS outcome,
               t.started_at,
               coalesce(t.finished_at, CASE WHEN a.state IN ('approved', 'rejected', 'canceled')
                                            THEN a.finished_at END) AS ended_at
          FROM syncd.task t
          JOIN syncd.approval a ON a.id = t.approval_id
         WHERE t.record_type = 'task' AND coalesce(t.status, '') <> 'NEW') s;
COMMENT ON VIEW syncd.stats_tasks IS
    'One row per approver task: who, at which node, what they did, and how long it waited for them.';

-- One row per visit of an approval to a node: its tasks together (a task whose node
-- DingTalk did not name is a visit of its own, node NULL).
--   passed    an approver agreed and none refused
--   refused   an approver refused
--   waiting   a task is still waiting and none refused
--   without_decision  ended with no approver's decision (the approval ended there)
-- wait_seconds: from its first task's start to its last task's end (passed and refused
-- visits only).
CREATE VIEW syncd.stats_node_visits AS
SELECT v.approval_id, v.kind, v.submitted_at, v.node, v.tasks, v.outcome, v.started_at,
       v.ended_at,
       CASE WHEN v.outcome IN ('passed', 'refused') AND v.ended_at IS NOT NULL
                 AND v.started_at IS NOT NULL
            THEN greatest(0, extract(epoch FROM v.ended_at - v.started_at))::float8
       END AS wait_seconds
  FROM (SELECT t.approval_id, t.kind, t.submitted_at, t.node, count(*) AS tasks,
               CASE
                   WHEN bool_or(t.outcome = 'refused') THEN 'refused'
                   WHEN bool_or(t.outcome = 'waiting') THEN 'waiting'
                   WHEN bool_or(t.outcome = 'agreed') THEN 'passed'
                   ELSE 'without_decision'
               END AS outcome,
               min(t.started_at) AS started_at,
               CASE WHEN bool_or(t.outcome = 'refused') OR NOT bool_or(t.outcome = 'waiting')
                    THEN max(t.ended_at) END AS ended_at
          FROM syncd.stats_tasks t
         GROUP BY t.approval_id, t.kind, t.submitted_at, t.node,
                  CASE WHEN t.node IS NULL THEN t.task_id END) v;
COMMENT ON VIEW syncd.stats_node_visits IS
    'One row per visit of an approval to a node: its outcome and how long it waited there.';

-- Per period (day, week, month: its first day in period_start), kind: the rounds
-- submitted and what became of them; the median and 90th percentile decision time.
CREATE VIEW syncd.stats_by_period AS
SELECT p.period, date_trunc(p.period, r.submitted_at)::date AS period_start, r.kind,
       count(*) AS submitted,
       count(*) FILTER (WHERE r.outcome = 'approved') AS approved,
       count(*) FILTER (WHERE r.outcome = 'rejected') AS rejected,
       count(*) FILTER (WHERE r.outcome = 'canceled') AS canceled,
       count(*) FILTER (WHERE r.outcome = 'superseded') AS superseded,
       count(*) FILTER (WHERE r.outcome = 'parked') AS parked,
       count(*) FILTER (WHERE r.outcome = 'dismissed') AS dismissed,
       count(*) FILTER (WHERE r.outcome = 'pending') AS pending,
       count(*) FILTER (WHERE r.outcome = 'running') AS running,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.decision_seconds) AS decision_p50_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY r.decision_seconds) AS decision_p90_seconds
  FROM syncd.stats_rounds r
 CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS p (period)
 GROUP BY p.period, date_trunc(p.period, r.submitted_at)::date, r.kind;
COMMENT ON VIEW syncd.stats_by_period IS
    'Per period and kind: rounds submitted, what became of them, decision time p50/p90.';

-- Per period, kind and node: visits of rounds submitted in the period, by outcome; the
-- wait at the node (p50/p90 of passed and refused visits); the oldest visit still waiting.
CREATE VIEW syncd.stats_by_node AS
SELECT p.period, date_trunc(p.period, v.submitted_at)::date AS period_start, v.kind, v.node,
       count(*) AS visits,
       count(*) FILTER (WHERE v.outcome = 'passed') AS passed,
       count(*) FILTER (WHERE v.outcome = 'refused') AS refused,
       count(*) FILTER (WHERE v.outcome = 'without_decision') AS without_decision,
       count(*) FILTER (WHERE v.outcome = 'waiting') AS waiting,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.wait_seconds) AS wait_p50_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY v.wait_seconds) AS wait_p90_seconds,
       min(v.started_at) FILTER (WHERE v.outcome = 'waiting') AS waiting_since
  FROM syncd.stats_node_visits v
 CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS p (period)
 GROUP BY p.period, date_trunc(p.period, v.submitted_at)::date, v.kind, v.node;
COMMENT ON VIEW syncd.stats_by_node IS
    'Per period, kind and node: visits by outcome, wait p50/p90, the oldest still waiting.';

-- Per period, kind and approver: tasks of rounds submitted in the period, by outcome; the
-- wait for the approver (p50/p90 of the tasks they decided); their oldest waiting task.
CREATE VIEW syncd.stats_by_approver AS
SELECT p.period, date_trunc(p.period, t.submitted_at)::date AS period_start, t.kind,
       t.approver,
       count(*) AS tasks,
       count(*) FILTER (WHERE t.outcome = 'agreed') AS agreed,
       count(*) FILTER (WHERE t.outcome = 'refused') AS refused,
       count(*) FILTER (WHERE t.outcome = 'without_decision') AS without_decision,
       count(*) FILTER (WHERE t.outcome = 'waiting') AS waiting,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t.wait_seconds)
           FILTER (WHERE t.outcome IN ('agreed', 'refused')) AS wait_p50_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY t.wait_seconds)
           FILTER (WHERE t.outcome IN ('agreed', 'refused')) AS wait_p90_seconds,
       min(t.started_at) FILTER (WHERE t.outcome = 'waiting') AS waiting_since
  FROM syncd.stats_tasks t
 CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS p (period)
 GROUP BY p.period, date_trunc(p.period, t.submitted_at)::date, t.kind, t.approver;
COMMENT ON VIEW syncd.stats_by_approver IS
    'Per period, kind and approver: tasks by outcome, wait p50/p90 of decided tasks, the oldest waiting.';

-- ---------------------------------------------------------------------------------------
-- 0008: live status. The business row follows an approval while it runs (submitted,
-- running, invalid, dead), not only its final outcome, with the approval's link. Every
-- change a business row may show bumps progress_seq: a state change or a new instance
-- (trigger approval_progress) and a task change (apply and poll). The write-back stage
-- writes the latest state of approvals whose progress_seq is ahead of
-- progress_written_seq, one write per approval however many changes came meanwhile.
-- (syncd.capture_row() above ignores syncd's own write-backs.)
-- ---------------------------------------------------------------------------------------

ALTER TABLE syncd.approval
    ADD COLUMN progress_seq bigint NOT NULL DEFAULT 1,
    ADD COLUMN progress_written_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN progress_at timestamptz NULL,
    ADD COLUMN progress_next_at timestamptz NULL,
    ADD COLUMN progress_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN progress_written_at timestamptz NULL,
    ADD COLUMN progress_error text NULL,
    ADD COLUMN url text NULL;
COMMENT ON COLUMN syncd.approval.progress_seq IS
    'Version of what the business row may show of this round; bumped by each state, instance or task change.';
COMMENT ON COLUMN syncd.approval.progress_written_seq IS
    'The progress_seq last written to the business row (or passed over: not shown, a newer round shown, given up).';
COMMENT ON COLUMN syncd.approval.url IS
    'The instance''s link as DingTalk''s bpms_instance_change events carry it (url), when one arrived.';

-- Due live-status writes of the kinds that have them (the claim filters by kind).
CREATE INDEX approval_progress_due_idx ON syncd.approval (kind, progress_next_at)
    WHERE progress_seq > progress_written_seq AND state IN ('running', 'invalid', 'dead');

-- What DingTalk tells of a task beyond syncd.task's columns: the node's name (task
-- events) and the task's links (GET).
ALTER TABLE syncd.task
    ADD COLUMN activity_name text NULL,
    ADD COLUMN pc_url text NULL,
    ADD COLUMN mobile_url text NULL;

-- A link of an approval's first task that has one, as DingTalk's GET gave it ('pc' or
-- 'mobile').
CREATE FUNCTION syncd.approval_task_url(approval_id bigint, client text) RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT CASE $2 WHEN 'pc' THEN t.pc_url ELSE t.mobile_url END FROM syncd.task t
     WHERE t.approval_id = $1 AND t.record_type = 'task'
       AND CASE $2 WHEN 'pc' THEN t.pc_url ELSE t.mobile_url END IS NOT NULL
     ORDER BY t.started_at NULLS LAST, t.id
     LIMIT 1
$$;
COMMENT ON FUNCTION syncd.approval_task_url(bigint, text) IS
    'The pcUrl (client pc) or mobileUrl of an approval''s first task that has one.';

-- A state change or a new instance is a change the business row may show: a new version,
-- due at once unless a write is already pending (its due time, or its retry, stands).
CREATE FUNCTION syncd.approval_progressed() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.progress_seq := greatest(NEW.progress_seq, OLD.progress_seq + 1);
    NEW.progress_at := NEW.updated_at;
    IF OLD.progress_seq <= OLD.progress_written_seq THEN
        NEW.progress_next_at := NEW.updated_at;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION syncd.approval_progressed() IS
    'Bumps progress_seq when an approval''s state or instance changes (trigger approval_progress).';

CREATE TRIGGER approval_progress
    BEFORE UPDATE OF state, instance_id ON syncd.approval
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.instance_id IS DISTINCT FROM NEW.instance_id)
    EXECUTE FUNCTION syncd.approval_progressed();

-- Live-status writes that failed and are retried (or were given up until the next change).
CREATE VIEW syncd.progress_unwritten AS
SELECT a.id, a.kind, a.business_key, a.round, a.state, a.progress_seq, a.progress_written_seq,
       a.progress_attempts, a.progress_next_at, a.progress_error
  FROM syncd.approval a
 WHERE a.progress_error IS NOT NULL AND a.state IN ('running', 'invalid', 'dead');

-- The DingTalk directory (0011).
CREATE TABLE syncd.dingtalk_department (
    dept_id     bigint PRIMARY KEY,
    parent_id   bigint NULL,
    name        text NOT NULL,
    read_at     timestamptz NOT NULL,
    sync_id     bigint NULL,
    removed_at  timestamptz NULL
);
COMMENT ON TABLE syncd.dingtalk_department IS
    'DingTalk departments (root 1 has no parent); removed ones keep a removed_at.';
COMMENT ON COLUMN syncd.dingtalk_department.read_at IS
    'When DingTalk was read for this row: an older read never overwrites a newer one.';
COMMENT ON COLUMN syncd.dingtalk_department.sync_id IS
    'The last full sync (syncd.directory_sync) that saw this department.';
CREATE INDEX dingtalk_department_name_idx ON syncd.dingtalk_department (name)
    WHERE removed_at IS NULL;

CREATE TABLE syncd.dingtalk_user (
    user_id     text PRIMARY KEY,
    union_id    text NULL,
    name        text NOT NULL DEFAULT '',
    job_number  text NULL,
    mobile      text NULL,
    email       text NULL,
    org_email   text NULL,
    activated   boolean NOT NULL DEFAULT true,
    read_at     timestamptz NOT NULL,
    sync_id     bigint NULL,
    left_at     timestamptz NULL,
    left_hashes text[] NULL,
    CONSTRAINT dingtalk_user_left_check CHECK (
        left_at IS NULL
        OR (job_number IS NULL AND mobile IS NULL AND email IS NULL AND org_email IS NULL))
);
COMMENT ON TABLE syncd.dingtalk_user IS
    'DingTalk users: what look-ups by job number, mobile and email need, in normal form.';
COMMENT ON COLUMN syncd.dingtalk_user.job_number IS 'Trimmed and upper-cased.';
COMMENT ON COLUMN syncd.dingtalk_user.mobile IS
    'Normal form +<country code><digits>, e.g. +8613800138000.';
COMMENT ON COLUMN syncd.dingtalk_user.email IS 'Trimmed and lower-cased.';
COMMENT ON COLUMN syncd.dingtalk_user.left_hashes IS
    'For a departed user, SHA-256 of ''<by>:<value>'' of each matching value (the values are erased).';
CREATE INDEX dingtalk_user_job_number_idx ON syncd.dingtalk_user (job_number)
    WHERE job_number IS NOT NULL;
CREATE INDEX dingtalk_user_mobile_idx ON syncd.dingtalk_user (mobile) WHERE mobile IS NOT NULL;
CREATE INDEX dingtalk_user_email_idx ON syncd.dingtalk_user (email) WHERE email IS NOT NULL;
CREATE INDEX dingtalk_user_org_email_idx ON syncd.dingtalk_user (org_email)
    WHERE org_email IS NOT NULL;
CREATE INDEX dingtalk_user_left_hashes_idx ON syncd.dingtalk_user USING gin (left_hashes)
    WHERE left_hashes IS NOT NULL;

CREATE TABLE syncd.dingtalk_membership (
    user_id  text NOT NULL REFERENCES syncd.dingtalk_user (user_id) ON DELETE CASCADE,
    dept_id  bigint NOT NULL,
    PRIMARY KEY (user_id, dept_id)
);
COMMENT ON TABLE syncd.dingtalk_membership IS 'Which departments each present user belongs to.';
CREATE INDEX dingtalk_membership_dept_idx ON syncd.dingtalk_membership (dept_id);

CREATE TABLE syncd.directory_sync (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger      text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NULL,
    state        text NOT NULL DEFAULT 'running',
    queue        bigint[] NOT NULL DEFAULT '{1}',
    cursor       bigint NOT NULL DEFAULT 0,
    departments  integer NOT NULL DEFAULT 0,
    users        integer NOT NULL DEFAULT 0,
    calls        integer NOT NULL DEFAULT 0,
    last_error   text NULL,
    attempts     integer NOT NULL DEFAULT 0,
    retry_at     timestamptz NULL,
    lease_owner  text NULL,
    lease_until  timestamptz NULL,
    CONSTRAINT directory_sync_state_check CHECK (state IN ('running', 'done', 'failed')),
    CONSTRAINT directory_sync_trigger_check CHECK (trigger IN ('first', 'schedule', 'command'))
);
COMMENT ON TABLE syncd.directory_sync IS
    'Full syncs of the directory; a running one resumes after a crash from queue and cursor.';
COMMENT ON COLUMN syncd.directory_sync.queue IS
    'Departments still to read, the first one being read (its members from cursor on).';
COMMENT ON COLUMN syncd.directory_sync.cursor IS
    'Where the first department of queue stands: its next page of members (0, 100, ...), or -1 once its members are read and its sub-departments are next.';
COMMENT ON COLUMN syncd.directory_sync.attempts IS
    'DingTalk failures in a row (0 after a step that worked); the next try waits until retry_at.';
COMMENT ON COLUMN syncd.directory_sync.lease_owner IS
    'The replica (or syncd directory sync) running this sync until lease_until; another takes it over once the lease has passed.';
CREATE UNIQUE INDEX directory_sync_one_running_idx ON syncd.directory_sync ((true))
    WHERE state = 'running';

-- Contact-change events (0012): the running tasks of a person who left.
CREATE INDEX task_running_user_idx ON syncd.task (user_id)
    WHERE status = 'RUNNING' AND record_type = 'task';

-- ---------------------------------------------------------------------------------------
-- 0013 (lookup): the userId a round's create was sent with; by-mobile questions asked.
-- ---------------------------------------------------------------------------------------

ALTER TABLE syncd.approval ADD COLUMN originator_user_id text NULL;
COMMENT ON COLUMN syncd.approval.originator_user_id IS
    'The DingTalk userId the create was sent with (originator holds what the row named).';
-- The unfinished approvals of an originator who left (contact-change events).
CREATE INDEX approval_unfinished_originator_idx
    ON syncd.approval ((coalesce(originator_user_id, originator)))
    WHERE state IN ('submitting', 'running', 'unknown');

CREATE TABLE syncd.directory_mobile_ask (
    mobile_hash  text PRIMARY KEY,
    asked_at     timestamptz NOT NULL,
    user_id      text NULL
);
COMMENT ON TABLE syncd.directory_mobile_ask IS
    'By-mobile questions asked of DingTalk (SHA-256 of ''mobile:<normal form>''), and the userId it answered (NULL: nobody); not asked again until a later full sync finishes.';

-- ---------------------------------------------------------------------------------------
-- 0014 (myingest): outbox rows relayed from business databases; the relay's positions.
-- ---------------------------------------------------------------------------------------

ALTER TABLE syncd.outbox ADD COLUMN source_database text NULL;
ALTER TABLE syncd.outbox ADD COLUMN source_id bigint NULL;
ALTER TABLE syncd.outbox ADD CONSTRAINT outbox_source_check
    CHECK ((source_database IS NULL) = (source_id IS NULL));
CREATE UNIQUE INDEX outbox_source_idx ON syncd.outbox (source_database, source_id);
COMMENT ON COLUMN syncd.outbox.source_database IS
    'The business database ([databases.<name>]) whose syncd_outbox held the row; NULL: written here.';
COMMENT ON COLUMN syncd.outbox.source_id IS
    'The row''s id in that database''s syncd_outbox; NULL: written here.';

CREATE TABLE syncd.outbox_source (
    database     text PRIMARY KEY,
    last_id      bigint NOT NULL DEFAULT 0,
    relayed      bigint NOT NULL DEFAULT 0,
    relayed_at   timestamptz NULL
);
COMMENT ON TABLE syncd.outbox_source IS
    'Per business database: the highest syncd_outbox id relayed, rows relayed in all, and when the last of them came.';

-- ---------------------------------------------------------------------------------------
-- 0015: business databases in the DBA views.
-- Which database each row of the DBA views came from: an approval keeps its outbox row's
-- source_database (retention deletes outbox rows), and every DBA view about
-- rows ends with a column `database`: the [databases.<name>] whose syncd_outbox held the
-- row, or 'syncd' for one written into syncd.outbox here (the label the metrics use).
-- Its write-back goes to the kind's database ([kinds.<kind>] database): for a relayed
-- row that is the same one (a row of another database's kind is parked wrong_database).

ALTER TABLE syncd.approval ADD COLUMN source_database text NULL;
COMMENT ON COLUMN syncd.approval.source_database IS
    'The business database ([databases.<name>]) whose syncd_outbox held the row the round came from (syncd.outbox.source_database, kept when retention deletes that row); NULL: written into syncd.outbox.';

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

-- 0017 (attach): files uploaded into DingTalk's approval space for an approval round.
-- ---------------------------------------------------------------------------------------

CREATE TABLE syncd.attachment (
    approval_id  bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    component    text NOT NULL,
    file_index   integer NOT NULL CHECK (file_index >= 0),
    space_id     text NOT NULL,
    file_id      text NOT NULL,
    file_name    text NOT NULL,
    file_size    bigint NOT NULL CHECK (file_size >= 0),
    file_type    text NOT NULL,
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    PRIMARY KEY (approval_id, component, file_index)
);
COMMENT ON TABLE syncd.attachment IS
    'Files committed into DingTalk''s approval space for an approval round (one per DDAttachment component and file index); a retried submit reuses them instead of uploading again.';

-- 0016 (comments): comments both ways.
-- ---------------------------------------------------------------------------------------

-- syncd.comment: comments an application asked for (outbox rows with action 'comment'),
-- each sent once to its round's instance. 'waiting' until sent: held while the round
-- has no instance yet; ``in_doubt`` once a send was attempted whose outcome is not known
-- (the next attempt reads the instance's records before sending again).
CREATE TABLE syncd.comment (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id         bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    outbox_id           bigint NULL,
    user_id             text NULL,
    text                text NOT NULL,
    state               text NOT NULL DEFAULT 'waiting',
    in_doubt            boolean NOT NULL DEFAULT false,
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text NULL,
    lease_expires_at    timestamptz NULL,
    sent_as             text NULL,
    last_error_code     text NULL,
    last_error_message  text NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT comment_state_check CHECK (state IN ('waiting', 'sent', 'dropped', 'failed'))
);
COMMENT ON TABLE syncd.comment IS
    'Comments applications asked syncd to add to their approvals (outbox action ''comment''): waiting, sent (once), dropped (the round finished first) or failed (DingTalk refused it).';
COMMENT ON COLUMN syncd.comment.user_id IS
    'The commenting user as the outbox row named them; NULL: the kind''s comment_user, else the round''s originator.';
COMMENT ON COLUMN syncd.comment.in_doubt IS
    'A send was attempted and its outcome is unknown: the instance''s records are read before it is sent again.';
COMMENT ON COLUMN syncd.comment.sent_as IS
    'The userId the comment was sent as (commentUserId).';
CREATE INDEX comment_approval_idx ON syncd.comment (approval_id, id);
CREATE INDEX comment_waiting_idx ON syncd.comment (next_attempt_at) WHERE state = 'waiting';

-- Every comment and remark on an approval, in time order: DingTalk's operation records
-- (comments, ADD_REMARK, and the remarks of approvers' actions) and the remarks task
-- events carried that no record repeats.
CREATE FUNCTION syncd.approval_comments(approval_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'user_id', c.user_id, 'at', c.at, 'text', c.text, 'operation', c.operation)
             ORDER BY c.at NULLS LAST, c.record_type DESC, c.n), '[]'::jsonb)
      FROM (SELECT t.user_id, t.finished_at AS at, t.remark AS text, t.record_type,
                   coalesce(t.operation, 'TASK') AS operation,
                   CASE WHEN t.record_key ~ '^[0-9]{1,9}$' THEN t.record_key::integer
                        ELSE 0 END AS n
              FROM syncd.task t
             WHERE t.approval_id = $1
               AND (t.operation = 'ADD_REMARK' OR coalesce(t.remark, '') <> '')
               AND (t.record_type = 'operation' OR NOT EXISTS (
                       SELECT 1 FROM syncd.task o
                        WHERE o.approval_id = t.approval_id AND o.record_type = 'operation'
                          AND o.remark = t.remark
                          AND o.user_id IS NOT DISTINCT FROM t.user_id))) c
$$;
COMMENT ON FUNCTION syncd.approval_comments(bigint) IS
    'An approval''s comments and remarks as DingTalk recorded them, oldest first: a JSON array of {user_id, at, text, operation}.';

-- For DBAs: every comment on every round, DingTalk's record and syncd's outgoing ones.
CREATE VIEW syncd.comments AS
SELECT a.id AS approval_id, a.kind, a.business_key, a.round, a.instance_id,
       'dingtalk'::text AS source, c.operation, c.user_id, c.at, c.text, NULL::text AS state,
       NULL::text AS error
  FROM syncd.approval a,
       jsonb_to_recordset(syncd.approval_comments(a.id))
           AS c (user_id text, at timestamptz, text text, operation text)
 WHERE EXISTS (SELECT 1 FROM syncd.task t WHERE t.approval_id = a.id)
UNION ALL
SELECT a.id, a.kind, a.business_key, a.round, a.instance_id, 'outbox', 'ADD_REMARK',
       coalesce(m.sent_as, m.user_id), coalesce(m.sent_at, m.created_at), m.text, m.state,
       m.last_error_message
  FROM syncd.comment m JOIN syncd.approval a ON a.id = m.approval_id;
COMMENT ON VIEW syncd.comments IS
    'Comments on approvals: source dingtalk (the instance''s records as last read) and outbox (comments syncd was asked to add, with their state).';

-- Inbound kinds (0018): instances started in DingTalk waiting to be imported, and
-- the cursor of `syncd backfill`.
CREATE TABLE syncd.inbound_import (
    instance_id      text PRIMARY KEY,
    kind             text NOT NULL,
    process_code     text NOT NULL,
    source           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text NULL,
    lease_expires_at timestamptz NULL,
    last_error       text NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbound_import_source_check CHECK (source IN ('event', 'listing', 'backfill'))
);
COMMENT ON TABLE syncd.inbound_import IS
    'Instances of inbound kinds learned from start events, the listing or a backfill, not imported yet (deleted when imported or parked).';
CREATE INDEX inbound_import_due_idx ON syncd.inbound_import (next_attempt_at);

CREATE TABLE syncd.inbound_backfill (
    kind             text PRIMARY KEY,
    process_code     text NOT NULL,
    since            timestamptz NOT NULL,
    until            timestamptz NOT NULL,
    window_start     timestamptz NOT NULL,
    next_token       bigint NOT NULL DEFAULT 0,
    listed           bigint NOT NULL DEFAULT 0,
    queued           bigint NOT NULL DEFAULT 0,
    lease_owner      text NULL,
    lease_expires_at timestamptz NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz NULL
);
COMMENT ON TABLE syncd.inbound_backfill IS
    'The cursor of `syncd backfill` per inbound kind: the window being listed and its next page; a lease keeps a second backfill off it.';

-- ======================================================================================
-- Attachments back (migration 0019): files fetched from DingTalk after the decision.
-- ======================================================================================
CREATE TABLE syncd.attachment_in (
    approval_id    bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    file_id        text NOT NULL,
    space_id       text NULL,
    attached_in    text NOT NULL,
    file_name      text NOT NULL,
    file_size      bigint NULL CHECK (file_size >= 0),
    file_type      text NOT NULL,
    attached_by    text NULL,
    attached_at    timestamptz NULL,
    state          text NOT NULL,
    stored_as      text NULL,
    error_code     text NULL,
    error_message  text NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (approval_id, file_id),
    CONSTRAINT attachment_in_state_check CHECK (state IN ('fetched', 'linked', 'failed'))
);
COMMENT ON TABLE syncd.attachment_in IS
    'Files of finished approvals fetched back from DingTalk (attachments back): fetched (into the business table or directory), linked (only a download link written) or failed (with the reason); one row per round and fileId.';
COMMENT ON COLUMN syncd.attachment_in.attached_in IS
    'Where the file was attached: the DDAttachment component''s label, or ''comment''.';
COMMENT ON COLUMN syncd.attachment_in.stored_as IS
    'Where the bytes went: the business table, or the file''s path in the directory.';

CREATE TABLE syncd.attachment_fetch (
    approval_id       bigint PRIMARY KEY REFERENCES syncd.approval (id) ON DELETE CASCADE,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_owner       text NULL,
    lease_expires_at  timestamptz NULL,
    done_at           timestamptz NULL,
    last_error        text NULL
);
COMMENT ON TABLE syncd.attachment_fetch IS
    'Attachments back, per finished round: attempts, the next one, the lease of the replica fetching, and done_at once every file is in syncd.attachment_in.';

-- Files on outgoing comments (migration 0019): kept with the comment, each committed file
-- recorded by the comment and the file's index.
ALTER TABLE syncd.comment ADD COLUMN files jsonb NULL;
COMMENT ON COLUMN syncd.comment.files IS
    'The files the outbox row named (its payload''s files: name and one of content_base64, path or url; the content dropped once the comment is sent or failed); NULL: none.';

CREATE TABLE syncd.comment_file (
    comment_id   bigint NOT NULL REFERENCES syncd.comment (id) ON DELETE CASCADE,
    file_index   integer NOT NULL CHECK (file_index >= 0),
    space_id     text NOT NULL,
    file_id      text NOT NULL,
    file_name    text NOT NULL,
    file_size    bigint NOT NULL CHECK (file_size >= 0),
    file_type    text NOT NULL,
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    PRIMARY KEY (comment_id, file_index)
);
COMMENT ON TABLE syncd.comment_file IS
    'Files committed into DingTalk for an outgoing comment, by the index in the row''s files: reused, never uploaded again, when the comment is retried.';

-- ===== 0020: comments written back (write-back sources comments, last_comment) =====
-- An approval's comments, oldest first (ties in DingTalk's record order): a JSON array of
-- {user, at, text}, ``at`` in UTC as ISO 8601. Remarks given with an approver's action
-- are not comments (the source ``remark`` has the last of those).
CREATE FUNCTION syncd.approval_written_comments(approval_id bigint) RETURNS jsonb
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'user', c.user_id,
               'at', to_char(c.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'text', coalesce(c.remark, ''))
             ORDER BY c.finished_at NULLS LAST, c.n), '[]'::jsonb)
      FROM (SELECT t.user_id, t.finished_at, t.remark,
                   CASE WHEN t.record_key ~ '^[0-9]{1,9}$' THEN t.record_key::integer
                        ELSE 0 END AS n
              FROM syncd.task t
             WHERE t.approval_id = $1 AND t.record_type = 'operation'
               AND t.operation = 'ADD_REMARK') c
$$;
COMMENT ON FUNCTION syncd.approval_written_comments(bigint) IS
    'An approval''s comments (DingTalk''s ADD_REMARK records), oldest first, as the write-back source comments: a JSON array of {user, at, text}.';

-- ===== 0021: uploads begun (a lost commit answer is adopted, not stored twice) =====
CREATE TABLE syncd.upload_intent (
    approval_id  bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    slot         text NOT NULL,
    begun_at     timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    PRIMARY KEY (approval_id, slot)
);
COMMENT ON TABLE syncd.upload_intent IS
    'Uploads begun and not yet recorded (syncd.attachment, syncd.comment_file): a retry adopts the file an earlier attempt may have committed. slot names the file: ''<component>/<index>'' or ''comment <id>/<index>''.';
COMMENT ON COLUMN syncd.upload_intent.begun_at IS
    'When the first attempt began: a file stored under the name since then by the same person, with the same size, is taken as that attempt''s.';

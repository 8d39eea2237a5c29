-- 0009_statistics: statistics for management (docs/operate.md, "Statistics").
--
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

-- 0016_comments: comments both ways. Outbox rows with action 'comment' become
-- syncd.comment rows, each sent once to its round's instance; the comments and remarks
-- DingTalk records (syncd.task) are readable as JSON and in a view for DBAs.

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

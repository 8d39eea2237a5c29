-- 0020_comments_written_back: the approvers' comments (DingTalk's ADD_REMARK records, as
-- syncd last read them into syncd.task) as the write-back sources ``comments`` and
-- ``last_comment`` take them.

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

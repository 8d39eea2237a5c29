-- 0003_outcome_functions: who decided an approval and what they wrote, for write-backs.

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

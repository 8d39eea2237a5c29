-- 0007_outcome_decider: who decided an approval and the last remark, kept when it becomes
-- final, so every write-back of it (first, retried or replayed) writes the same values.
-- Approvals finished before this migration keep NULL here; their write-backs derive both
-- from the recorded tasks, as before.

ALTER TABLE syncd.approval
    ADD COLUMN approver text NULL,
    ADD COLUMN remark text NULL;
COMMENT ON COLUMN syncd.approval.approver IS
    'The last approver who agreed or refused, as DingTalk''s record said when the approval became final.';
COMMENT ON COLUMN syncd.approval.remark IS
    'The last non-empty remark on the instance, as DingTalk''s record said when the approval became final.';

-- 0010_dismissed: an operator may close a parked round for good (`syncd dismiss`, with a
-- reason kept in the round's history). Its state `dismissed` never moves again: the
-- round is never sent or retried, and it is not counted as parked (syncd.parked,
-- `syncd status --check`, the syncd_approvals gauge behind the parked-rows alert).
-- Replacing the CHECK reads syncd.approval once, under the table's lock.

ALTER TABLE syncd.approval DROP CONSTRAINT approval_state_check;
ALTER TABLE syncd.approval ADD CONSTRAINT approval_state_check CHECK (state IN (
    'pending', 'submitting', 'running', 'approved', 'rejected', 'canceled',
    'invalid', 'dead', 'unknown', 'dismissed'));
COMMENT ON COLUMN syncd.approval.state IS
    'pending → submitting → running → approved | rejected | canceled; parked: invalid, dead (retried to pending by an operator, or closed for good as dismissed); unknown: a create to reconcile.';

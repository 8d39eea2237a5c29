-- 0012_directory_events: when a person leaves the organisation (a contact-change event),
-- syncd notes it in the history of every unfinished approval they started or hold a
-- running task of. These two partial indexes find those approvals without reading the
-- finished ones; each holds only unfinished approvals and running tasks, so stays small.

CREATE INDEX approval_unfinished_originator_idx ON syncd.approval (originator)
    WHERE state IN ('submitting', 'running', 'unknown');
CREATE INDEX task_running_user_idx ON syncd.task (user_id)
    WHERE status = 'RUNNING' AND record_type = 'task';

-- 0012_directory_events: when a person leaves the organisation (a contact-change event),
-- syncd notes it in the history of every unfinished approval they started or hold a
-- running task of. This partial index finds the running tasks without reading the
-- finished ones (0013 adds the one for originators, with the column it needs).

CREATE INDEX task_running_user_idx ON syncd.task (user_id)
    WHERE status = 'RUNNING' AND record_type = 'task';

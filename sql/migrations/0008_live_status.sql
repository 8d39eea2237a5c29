-- 0008_live_status: the business row follows an approval while it runs (submitted,
-- running, invalid, dead), not only its final outcome, with the approval's link.
--
-- Every change a business row may show bumps the approval's progress_seq: a state change
-- or a new instance (the trigger below, whichever statement made it) and a task change
-- (apply and poll, in their own statements). The write-back stage writes the latest
-- state of approvals whose progress_seq is ahead of progress_written_seq, one per
-- approval however many changes came meanwhile, and records what it wrote.

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

-- syncd's own write-backs never capture: syncd marks their transaction
-- (syncd.writing_back = on), and the capture function then writes no outbox row. A
-- business row that syncd updates with a value a capture condition waits for (a status
-- mapped to the one that submits) must not submit it again.
CREATE OR REPLACE FUNCTION syncd.capture_row() RETURNS trigger
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

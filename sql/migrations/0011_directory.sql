-- 0011_directory: the DingTalk directory, so that a kind may name people by job number,
-- mobile or email. Filled by a full sync (syncd.directory_sync: one row per sync, its
-- progress kept so a crash resumes it), kept current by contact-change events. Only what
-- matching and display need is kept; a departed user keeps their userid and, instead of
-- their job number, mobile and email, only hashes of them (so that a look-up can still
-- say "departed"), until they are forgotten.

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

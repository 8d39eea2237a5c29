-- 0019_attachment_in: files fetched back from DingTalk after the decision (attachments
-- back). syncd.attachment_in holds one row per file of a finished round (a DDAttachment
-- component's or an approver's comment's), fetched or not, keyed by the round and the
-- file's id: the business table's insert and this row commit together, so a crash in
-- between neither loses nor duplicates a file. syncd.attachment_fetch is each round's
-- progress: claimed with a lease, retried with backoff, done once every file is recorded.

CREATE TABLE syncd.attachment_in (
    approval_id    bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    file_id        text NOT NULL,
    space_id       text NULL,
    attached_in    text NOT NULL,
    file_name      text NOT NULL,
    file_size      bigint NULL CHECK (file_size >= 0),
    file_type      text NOT NULL,
    attached_by    text NULL,
    attached_at    timestamptz NULL,
    state          text NOT NULL,
    stored_as      text NULL,
    error_code     text NULL,
    error_message  text NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (approval_id, file_id),
    CONSTRAINT attachment_in_state_check CHECK (state IN ('fetched', 'linked', 'failed'))
);
COMMENT ON TABLE syncd.attachment_in IS
    'Files of finished approvals fetched back from DingTalk (attachments back): fetched (into the business table or directory), linked (only a download link written) or failed (with the reason); one row per round and fileId.';
COMMENT ON COLUMN syncd.attachment_in.attached_in IS
    'Where the file was attached: the DDAttachment component''s label, or ''comment''.';
COMMENT ON COLUMN syncd.attachment_in.stored_as IS
    'Where the bytes went: the business table, or the file''s path in the directory.';

CREATE TABLE syncd.attachment_fetch (
    approval_id       bigint PRIMARY KEY REFERENCES syncd.approval (id) ON DELETE CASCADE,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    lease_owner       text NULL,
    lease_expires_at  timestamptz NULL,
    done_at           timestamptz NULL,
    last_error        text NULL
);
COMMENT ON TABLE syncd.attachment_fetch IS
    'Attachments back, per finished round: attempts, the next one, the lease of the replica fetching, and done_at once every file is in syncd.attachment_in.';

-- Files on outgoing comments: a comment row's payload may name files (``files``, kept
-- with the comment until it is sent); each file committed into the commenting user's
-- approval space is recorded at once, so a comment retried after a crash reuses it.
ALTER TABLE syncd.comment ADD COLUMN files jsonb NULL;
COMMENT ON COLUMN syncd.comment.files IS
    'The files the outbox row named (its payload''s files: name and one of content_base64, path or url; the content dropped once the comment is sent or failed); NULL: none.';

CREATE TABLE syncd.comment_file (
    comment_id   bigint NOT NULL REFERENCES syncd.comment (id) ON DELETE CASCADE,
    file_index   integer NOT NULL CHECK (file_index >= 0),
    space_id     text NOT NULL,
    file_id      text NOT NULL,
    file_name    text NOT NULL,
    file_size    bigint NOT NULL CHECK (file_size >= 0),
    file_type    text NOT NULL,
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    PRIMARY KEY (comment_id, file_index)
);
COMMENT ON TABLE syncd.comment_file IS
    'Files committed into DingTalk for an outgoing comment, by the index in the row''s files: reused, never uploaded again, when the comment is retried.';

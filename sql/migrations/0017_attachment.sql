-- 0017_attachment: files uploaded into DingTalk's approval space for an approval round.
-- One row per committed file, keyed by the round (approval id), the DDAttachment
-- component's label and the file's index in it: a submit that crashed after a commit
-- finds the row and reuses the fileId instead of uploading the file again.

CREATE TABLE syncd.attachment (
    approval_id  bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    component    text NOT NULL,
    file_index   integer NOT NULL CHECK (file_index >= 0),
    space_id     text NOT NULL,
    file_id      text NOT NULL,
    file_name    text NOT NULL,
    file_size    bigint NOT NULL CHECK (file_size >= 0),
    file_type    text NOT NULL,
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    PRIMARY KEY (approval_id, component, file_index)
);
COMMENT ON TABLE syncd.attachment IS
    'Files committed into DingTalk''s approval space for an approval round (one per DDAttachment component and file index); a retried submit reuses them instead of uploading again.';

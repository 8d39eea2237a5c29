-- 0021_upload_intent: a file's upload into DingTalk, noted before its chain begins and
-- forgotten when the committed file is recorded. A storage commit whose answer was lost
-- (a crash, a cut) cannot be told from one never made; a retry that finds this row knows
-- an earlier attempt may have stored the file, and asks DingTalk for the file already
-- under that name (RETURN_DENTRY_IF_EXISTS) instead of storing a second copy.

CREATE TABLE syncd.upload_intent (
    approval_id  bigint NOT NULL REFERENCES syncd.approval (id) ON DELETE CASCADE,
    slot         text NOT NULL,
    begun_at     timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    PRIMARY KEY (approval_id, slot)
);
COMMENT ON TABLE syncd.upload_intent IS
    'Uploads begun and not yet recorded (syncd.attachment, syncd.comment_file): a retry adopts the file an earlier attempt may have committed. slot names the file: ''<component>/<index>'' or ''comment <id>/<index>''.';
COMMENT ON COLUMN syncd.upload_intent.begun_at IS
    'When the first attempt began: a file stored under the name since then by the same person, with the same size, is taken as that attempt''s.';

-- 0013_lookup: people named by job number, mobile or email. The DingTalk userId a round's
-- create was sent with (the originator as the directory found them), and the by-mobile
-- questions asked of DingTalk for people the directory did not have yet: one per mobile
-- (by a hash of its normal form, never the number) until the next full sync finishes.

ALTER TABLE syncd.approval ADD COLUMN originator_user_id text NULL;
COMMENT ON COLUMN syncd.approval.originator_user_id IS
    'The DingTalk userId the create was sent with (originator holds what the row named).';
-- The unfinished approvals of an originator who left (contact-change events).
CREATE INDEX approval_unfinished_originator_idx
    ON syncd.approval ((coalesce(originator_user_id, originator)))
    WHERE state IN ('submitting', 'running', 'unknown');

CREATE TABLE syncd.directory_mobile_ask (
    mobile_hash  text PRIMARY KEY,
    asked_at     timestamptz NOT NULL,
    user_id      text NULL
);
COMMENT ON TABLE syncd.directory_mobile_ask IS
    'By-mobile questions asked of DingTalk (SHA-256 of ''mobile:<normal form>''), and the userId it answered (NULL: nobody); not asked again until a later full sync finishes.';

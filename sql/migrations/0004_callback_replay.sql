-- 0004_callback_replay: signatures of accepted HTTP callbacks, shared by every replica.

-- One row per accepted callback push (check_url included), keyed by its signature
-- (lower-case hex). A push is accepted only if inserting its signature finds none there,
-- in the same statement that stores its event in syncd.inbox, so a replay is refused by
-- every replica and after a restart. A row is kept until its push's timestamp is stale
-- anyway (expires_at = timestamp + events.callback.max_age); a periodic job deletes
-- expired rows.
CREATE TABLE syncd.callback_replay (
    signature   text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX callback_replay_expires_idx ON syncd.callback_replay (expires_at);
COMMENT ON TABLE syncd.callback_replay IS
    'Signatures of accepted DingTalk callback pushes until their timestamp is stale (replay guard shared by all replicas).';

-- 0002_rate_limit: DingTalk call pacing shared by every replica.

-- One row per DingTalk endpoint: the next free call slot (GCRA "theoretical arrival
-- time"). A replica reserves a slot by moving next_slot_at forward by 1/rate in one
-- UPDATE, so slots handed to all replicas together are at least 1/rate apart.
CREATE TABLE syncd.rate_limit (
    endpoint      text PRIMARY KEY,
    next_slot_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE syncd.rate_limit IS
    'Next free DingTalk call slot per endpoint, shared by all replicas (pacing under the QPS limit).';

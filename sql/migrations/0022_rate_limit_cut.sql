-- 0022_rate_limit_cut: the rate cut after a throttle, shared by every replica.
-- A replica that DingTalk throttles cuts the endpoint's rate and records the cut here;
-- every replica reads it back with its next slot and climbs back along the same curve,
-- so replicas sharing an app follow one rate instead of each cutting on its own.

ALTER TABLE syncd.rate_limit
    ADD COLUMN cut_at     timestamptz NULL,
    ADD COLUMN cut_peak   float8 NULL CHECK (cut_peak > 0 AND cut_peak <= 1),
    ADD COLUMN cut_share  float8 NULL CHECK (cut_share > 0 AND cut_share <= 1);
COMMENT ON COLUMN syncd.rate_limit.cut_at IS
    'When a replica last cut the rate after DingTalk throttled this endpoint (NULL: never).';
COMMENT ON COLUMN syncd.rate_limit.cut_peak IS
    'The share of the configured rate the climb after the cut flattens out at.';
COMMENT ON COLUMN syncd.rate_limit.cut_share IS
    'The share of the configured rate right after the cut.';

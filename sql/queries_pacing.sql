-- Named queries of the shared DingTalk pacer (syncd/dingtalk/pg_pacing.py), to be merged
-- into queries.sql. Times come from the database's clock_timestamp(), so replicas whose
-- clocks disagree still share one schedule.

-- ensure_rate_limit_endpoint --
-- Create an endpoint's pacing row if it is missing.
INSERT INTO syncd.rate_limit (endpoint)
VALUES (%(endpoint)s)
ON CONFLICT (endpoint) DO NOTHING;

-- reserve_rate_slot --
-- Take the endpoint's next free slot unless it is more than max_wait seconds away; no row means "too far off" (or no pacing row yet).
UPDATE syncd.rate_limit
   SET next_slot_at = greatest(next_slot_at, clock_timestamp())
                      + make_interval(secs => %(interval)s::float8)
 WHERE endpoint = %(endpoint)s
   AND next_slot_at <= clock_timestamp() + make_interval(secs => %(max_wait)s::float8)
RETURNING next_slot_at - make_interval(secs => %(interval)s::float8) AS slot_at,
          greatest(0, extract(epoch FROM next_slot_at - clock_timestamp())::float8
                      - %(interval)s::float8) AS wait_seconds;

-- select_rate_slot_wait --
-- Seconds until the endpoint's next free slot (reserves nothing).
SELECT greatest(0, extract(epoch FROM next_slot_at - clock_timestamp()))::float8 AS wait_seconds
  FROM syncd.rate_limit
 WHERE endpoint = %(endpoint)s;

-- penalize_rate_limit --
-- DingTalk throttled the endpoint: no replica gets a slot before now + seconds.
UPDATE syncd.rate_limit
   SET next_slot_at = greatest(next_slot_at,
                               clock_timestamp() + make_interval(secs => %(seconds)s::float8))
 WHERE endpoint = %(endpoint)s;

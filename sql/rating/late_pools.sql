-- The incremental rule (docs/RULES.md, "Rating as the deliveries arrive"):
-- the pools that a new event reaches before their last event rated so far
-- (a late or out-of-order delivery). Their events are rated again from
-- the month's start (rerated_events.sql); the other pools continue from
-- what they used (`carried_pools`).
--
-- `run_rated`: the new events this run rated, continuing each pool;
-- `previous_usage`: each pool as the last run left it (pool_usage.sql).
-- Only a limited pool's order matters: an unlimited one covers every
-- event whatever its order, and an event outside any pool is all overage.
SELECT DISTINCT r.msisdn, r.pool_start, r.allowance_group
FROM run_rated r
JOIN previous_usage u
    ON u.msisdn = r.msisdn
   AND u.pool_start = r.pool_start
   AND u.allowance_group = r.allowance_group
JOIN pools p
    ON p.msisdn = r.msisdn
   AND p.pool_start = r.pool_start
   AND p.allowance_group = r.allowance_group
WHERE NOT p.unlimited
  AND (
      r.start_time < u.last_event_time
      OR (r.start_time = u.last_event_time AND r.cdr_id < u.last_cdr_id)
  )

-- What the window of rated_events.sql starts each pool from: what its
-- events rated by earlier runs used (pool_usage.sql), for the pools this
-- run continues. A pool rated again from the month's start (late_pools,
-- changed_lines) starts from nothing. Empty when the month is rated whole.
SELECT u.msisdn, u.pool_start, u.allowance_group, u.consumed
FROM previous_usage u
WHERE u.msisdn NOT IN (SELECT msisdn FROM changed_lines)
  AND NOT EXISTS (
      SELECT 1
      FROM late_pools l
      WHERE l.msisdn = u.msisdn
        AND l.pool_start = u.pool_start
        AND l.allowance_group = u.allowance_group
  )

-- The incremental rule (docs/RULES.md §4a): the pools this run continues
-- from what their events rated by earlier runs used (`previous_usage`,
-- pool_usage.sql), that is every pool but those rated again from the
-- month's start: a late event reached it (`late_pools`), or its line is
-- rated again whole (`changed_lines`). Run again once `late_pools` is
-- known (carried_pools.sql before it, pool_usage.sql after).
SELECT u.*
FROM previous_usage u
WHERE u.msisdn NOT IN (SELECT msisdn FROM changed_lines)
  AND NOT EXISTS (
      SELECT 1
      FROM late_pools l
      WHERE l.msisdn = u.msisdn
        AND l.pool_start = u.pool_start
        AND l.allowance_group = u.allowance_group
  )

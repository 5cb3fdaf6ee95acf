-- The incremental rule (docs/RULES.md): the events rated again from the
-- month's start, all of each: those of a line whose subscription rows or
-- billed copies changed (`changed_lines`, changed_lines.sql), and those of
-- a pool a late event reached (`late_pools`, late_pools.sql). `rate`
-- registers as `cdrs` the month's events of those lines only.
SELECT e.*
FROM priced_events e
WHERE e.msisdn IN (SELECT msisdn FROM changed_lines)
   OR EXISTS (
       SELECT 1
       FROM late_pools l
       WHERE l.msisdn = e.msisdn
         AND l.pool_start = e.pool_start
         AND l.allowance_group = e.allowance_group
   )

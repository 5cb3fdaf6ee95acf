-- What the window of rated_events.sql starts each pool from: what its
-- events rated by earlier runs used, for the pools this run continues
-- (continued_usage.sql). A pool rated again from the month's start starts
-- from nothing. Empty when the month is rated whole.
SELECT msisdn, pool_start, allowance_group, consumed
FROM continued_usage

-- rating.md §6.1: the billable days of each subscription row in the month:
-- the days of the month inside [start_date, end_date] and not after the day
-- the line became TERMINATED at the MVNE (that day is billed). A line
-- SUSPENDED at the MVNE is still billed: suspension does not end the
-- contract. Rows with no billable day give no line.
WITH ends AS (
    SELECT
        s.*,
        CASE
            WHEN t.terminated_on IS NOT NULL AND t.terminated_on < s.period_end THEN t.terminated_on
            ELSE s.period_end
        END AS billable_end
    FROM month_subscriptions s
    LEFT JOIN terminations t ON t.msisdn = s.msisdn
)
SELECT
    *,
    CAST(billable_end AS BIGINT) - CAST(period_start AS BIGINT) + 1 AS billable_days
FROM ends
WHERE billable_end >= period_start

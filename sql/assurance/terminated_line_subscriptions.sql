-- rating.md §8: subscription rows of the month on lines the MVNE reports
-- TERMINATED, that run past the termination day: the integrator's table
-- still bills a dead line. `bill` stops every subscription and option line
-- at that day (rating.md §6.1, `terminations.sql`), so these days were not
-- invoiced; the finding says the table must be closed (or the MVNE asked
-- why the line is dead).
--
-- period_start..period_end are the row's days of the month after the
-- termination day (`days` of them); the amount is the plan's monthly fee
-- for those days, round(monthly_fee x days / days_in_month, 2), at the fee
-- version subscription_lines.sql would use (options aside).
WITH dead AS (
    SELECT
        s.*,
        t.terminated_on,
        CASE
            WHEN t.terminated_on >= s.period_start THEN t.terminated_on + INTERVAL '1 day'
            ELSE s.period_start
        END AS dead_from
    FROM month_subscriptions s
    JOIN terminations t ON t.msisdn = s.msisdn
    WHERE t.terminated_on < s.period_end
)
SELECT
    'TERMINATED_LINE_SUBSCRIPTION' AS kind,
    NULL AS reason,
    NULL AS cdr_id,
    d.msisdn,
    d.customer_id,
    NULL AS event_type,
    NULL AS start_time,
    NULL AS landed_wholesale,
    NULL AS billed_wholesale,
    CAST(
        f.monthly_fee * (CAST(d.period_end AS BIGINT) - CAST(d.dead_from AS BIGINT) + 1)
        / p.days_in_month
        AS DECIMAL(18, 2)
    ) AS amount,
    NULL AS cdrs,
    d.terminated_on,
    d.dead_from AS period_start,
    d.period_end,
    CAST(d.period_end AS BIGINT) - CAST(d.dead_from AS BIGINT) + 1 AS days,
    NULL AS source_file
FROM dead d
CROSS JOIN params p
LEFT JOIN plan_fee_versions f
    ON f.plan_code = d.plan_code
   AND f.commitment_months = d.commitment_months
   AND f.with_handset = d.with_handset
   AND f.valid_from <= d.period_start
   AND (f.valid_to IS NULL OR d.period_start < f.valid_to)

-- Subscription rows that overlap the billing month, with the part of the
-- month they cover: period_start = max(start_date, first day of the month),
-- period_end = min(end_date, last day). period_start is the date that picks
-- the fee, option and allowance versions of the row (rating.md §6.1).
SELECT
    s.msisdn,
    s.customer_id,
    s.plan_code,
    s.commitment_months,
    s.with_handset,
    s.rate_grid,
    s.start_date,
    s.end_date,
    CASE WHEN s.start_date > p.month_start THEN s.start_date ELSE p.month_start END AS period_start,
    CASE
        WHEN s.end_date IS NULL OR s.end_date > p.month_end THEN p.month_end
        ELSE s.end_date
    END AS period_end
FROM subscriptions s
CROSS JOIN params p
WHERE s.start_date <= p.month_end
  AND (s.end_date IS NULL OR s.end_date >= p.month_start)

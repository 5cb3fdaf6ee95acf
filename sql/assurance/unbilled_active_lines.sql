-- rating.md §8: lines the MVNE reports ACTIVE in at least one AccountStatus
-- snapshot of the month (Paris date of the snapshot) while no
-- subscriptions.csv row of the line overlaps the month: the MVNE charges us
-- for a line no customer pays for. A line whose subscription starts later in
-- the month than its activation is not one (it has a row in the month).
--
-- The amount is the wholesale cost of the line's landed CDRs of the month
-- (its traffic, all NO_SUBSCRIPTION exceptions); `cdrs` counts them;
-- period_start and period_end are the first and last snapshot that saw the
-- line ACTIVE.
WITH active AS (
    SELECT
        a.msisdn,
        MIN(a.snapshot_date) AS first_active,
        MAX(a.snapshot_date) AS last_active
    FROM account_status a
    CROSS JOIN params p
    WHERE a.status = 'ACTIVE'
      AND a.snapshot_date >= p.month_start
      AND a.snapshot_date <= p.month_end
    GROUP BY a.msisdn
),
traffic AS (
    SELECT msisdn, COUNT(*) AS cdrs, SUM(wholesale_eur) AS wholesale
    FROM cdrs
    GROUP BY msisdn
)
SELECT
    'UNBILLED_ACTIVE_LINE' AS kind,
    NULL AS reason,
    NULL AS cdr_id,
    a.msisdn,
    NULL AS customer_id,
    NULL AS event_type,
    NULL AS start_time,
    COALESCE(t.wholesale, 0) AS landed_wholesale,
    NULL AS billed_wholesale,
    COALESCE(t.wholesale, 0) AS amount,
    COALESCE(t.cdrs, 0) AS cdrs,
    NULL AS terminated_on,
    a.first_active AS period_start,
    a.last_active AS period_end,
    NULL AS days,
    NULL AS source_file
FROM active a
LEFT JOIN traffic t ON t.msisdn = a.msisdn
WHERE NOT EXISTS (SELECT 1 FROM month_subscriptions s WHERE s.msisdn = a.msisdn)

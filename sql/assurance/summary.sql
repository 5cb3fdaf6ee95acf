-- rating.md §8: the `assurance_summary` dataset, what the finance report
-- prints: per kind of finding (and per reason for rating exceptions) the
-- number of findings and their euro totals, exact (Decimal, scale 6):
--   landed_wholesale  sum of our landed wholesale_eur
--   billed_wholesale  sum of the MVNE's billed wholesale_eur
--   amount            sum of each finding's amount (see findings.sql)
--   cdrs, days        sums of those columns (active lines' CDRs, days of
--                     subscriptions after a termination)
-- Every kind has a row, 0 when nothing was found, except the four
-- comparisons with the MVNE's BilledCDRs when no statement for the month
-- has landed: those were not checked, and have no row.
WITH kinds (position, kind, needs_statement) AS (
    VALUES
        (1, 'BILLED_NOT_LANDED', true),
        (2, 'LANDED_NOT_BILLED', true),
        (3, 'AMOUNT_MISMATCH', true),
        (4, 'BILLED_TWICE', true),
        (5, 'UNBILLED_ACTIVE_LINE', false),
        (6, 'TERMINATED_LINE_SUBSCRIPTION', false),
        (7, 'RATING_EXCEPTION', false),
        (8, 'LATE_CDR', false)
),
checked AS (
    SELECT k.*
    FROM kinds k
    CROSS JOIN (SELECT COUNT(*) AS files FROM billed_statement) s
    WHERE NOT k.needs_statement OR s.files > 0
),
totals AS (
    SELECT
        kind,
        reason,
        COUNT(*) AS findings,
        SUM(landed_wholesale) AS landed_wholesale,
        SUM(billed_wholesale) AS billed_wholesale,
        SUM(amount) AS amount,
        SUM(cdrs) AS cdrs,
        SUM(days) AS days
    FROM findings
    GROUP BY kind, reason
)
SELECT
    c.kind,
    t.reason,
    COALESCE(t.findings, 0) AS findings,
    CAST(COALESCE(t.landed_wholesale, 0) AS DECIMAL(18, 6)) AS landed_wholesale,
    CAST(COALESCE(t.billed_wholesale, 0) AS DECIMAL(18, 6)) AS billed_wholesale,
    CAST(COALESCE(t.amount, 0) AS DECIMAL(18, 6)) AS amount,
    CAST(COALESCE(t.cdrs, 0) AS BIGINT) AS cdrs,
    CAST(COALESCE(t.days, 0) AS BIGINT) AS days
FROM checked c
LEFT JOIN totals t ON t.kind = c.kind
ORDER BY c.position, t.reason

-- rating.md §8, with the comparisons: a cdr_id that the MVNE's BilledCDRs
-- rows of the month hold more than once. The first copy (by file, then
-- line) is compared above; each later copy is the same event billed again:
-- the amount is that copy's billed wholesale_eur. (Two statement files of
-- the same month, such as a corrected re-delivery, show here copy for copy.)
-- Checked only once the month's statement has landed.
WITH repeated AS (
    SELECT cdr_id
    FROM billed_cdrs
    WHERE EXISTS (SELECT 1 FROM billed_statement)
    GROUP BY cdr_id
    HAVING COUNT(*) > 1
),
copies AS (
    SELECT
        b.*,
        ROW_NUMBER() OVER (
            PARTITION BY b.cdr_id ORDER BY b.source_file, b.source_line
        ) AS copy
    FROM billed_cdrs b
    JOIN repeated r ON r.cdr_id = b.cdr_id
)
SELECT
    'BILLED_TWICE' AS kind,
    NULL AS reason,
    cdr_id,
    msisdn,
    NULL AS customer_id,
    event_type,
    start_time,
    NULL AS landed_wholesale,
    wholesale_eur AS billed_wholesale,
    wholesale_eur AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    source_file
FROM copies
WHERE copy > 1

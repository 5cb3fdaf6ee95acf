-- rating.md §8, third comparison: CDRs both landed and billed, at another
-- wholesale amount. Both sides are kept; the amount is billed - landed
-- (positive: the MVNE charged more than its own RatedCDRs said). One row per
-- billed copy that differs. Checked only when the month's statement has
-- landed.
SELECT
    'AMOUNT_MISMATCH' AS kind,
    NULL AS reason,
    c.cdr_id,
    c.msisdn,
    NULL AS customer_id,
    c.event_type,
    c.start_time,
    c.wholesale_eur AS landed_wholesale,
    b.wholesale_eur AS billed_wholesale,
    b.wholesale_eur - c.wholesale_eur AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    b.source_file
FROM cdrs c
JOIN billed_cdrs b ON b.cdr_id = c.cdr_id
WHERE EXISTS (SELECT 1 FROM billed_statement)
  AND b.wholesale_eur <> c.wholesale_eur

-- rating.md §8, third comparison: CDRs both landed and billed, at another
-- wholesale amount. Both sides are kept; the amount is billed - landed
-- (positive: the MVNE charged more than its own RatedCDRs said). One row per
-- billed copy that differs; source_file is the BilledCDRs file.
SELECT
    'AMOUNT_MISMATCH' AS kind,
    NULL AS reason,
    cdr_id,
    msisdn,
    NULL AS customer_id,
    event_type,
    start_time,
    landed_wholesale,
    billed_wholesale,
    billed_wholesale - landed_wholesale AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    billed_file AS source_file
FROM cdr_comparison
WHERE landed AND billed

-- rating.md §8, second comparison: the month's landed CDRs that the MVNE's
-- BilledCDRs statement does not hold. The MVNE did not charge them (or says
-- they are not ours): the amount is our landed copy's wholesale_eur, which
-- the MVNE's invoice leaves out.
SELECT
    'LANDED_NOT_BILLED' AS kind,
    NULL AS reason,
    cdr_id,
    msisdn,
    NULL AS customer_id,
    event_type,
    start_time,
    landed_wholesale,
    NULL AS billed_wholesale,
    landed_wholesale AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    landed_file AS source_file
FROM cdr_comparison
WHERE NOT billed

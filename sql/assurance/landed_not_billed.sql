-- rating.md §8, second comparison: the month's unique landed CDRs (first
-- copy of each cdr_id) that the MVNE's BilledCDRs statement does not hold.
-- The MVNE did not charge them (or says they are not ours): the amount is
-- our landed copy's wholesale_eur, which the MVNE's invoice leaves out.
-- Checked only when the month's statement has landed.
SELECT
    'LANDED_NOT_BILLED' AS kind,
    NULL AS reason,
    c.cdr_id,
    c.msisdn,
    NULL AS customer_id,
    c.event_type,
    c.start_time,
    c.wholesale_eur AS landed_wholesale,
    NULL AS billed_wholesale,
    c.wholesale_eur AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    c.source_file
FROM cdrs c
WHERE EXISTS (SELECT 1 FROM billed_statement)
  AND NOT EXISTS (SELECT 1 FROM billed_cdrs b WHERE b.cdr_id = c.cdr_id)

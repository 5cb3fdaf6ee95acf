-- rating.md §8, first comparison: CDRs the MVNE billed us for the month
-- (its BilledCDRs statement) whose cdr_id never landed among the month's
-- CDRs. We pay their wholesale cost and cannot bill them: the amount is the
-- MVNE's billed wholesale_eur.
--
-- "The month" on both sides is the Paris local date of the event (the
-- partitions of `billed_cdrs` and `cdrs`). Checked only when a BilledCDRs
-- file named for the month has landed (`billed_statement`): without it,
-- every CDR would look unbilled.
SELECT
    'BILLED_NOT_LANDED' AS kind,
    NULL AS reason,
    b.cdr_id,
    b.msisdn,
    NULL AS customer_id,
    b.event_type,
    b.start_time,
    NULL AS landed_wholesale,
    b.wholesale_eur AS billed_wholesale,
    b.wholesale_eur AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    b.source_file
FROM billed_cdrs b
WHERE EXISTS (SELECT 1 FROM billed_statement)
  AND NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.cdr_id = b.cdr_id)

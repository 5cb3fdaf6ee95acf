-- rating.md §8, first comparison: CDRs the MVNE billed us for the month
-- whose cdr_id never landed among the month's CDRs. We pay their wholesale
-- cost and cannot bill them: the amount is the MVNE's billed wholesale_eur.
SELECT
    'BILLED_NOT_LANDED' AS kind,
    NULL AS reason,
    cdr_id,
    msisdn,
    NULL AS customer_id,
    event_type,
    start_time,
    NULL AS landed_wholesale,
    billed_wholesale,
    billed_wholesale AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    billed_file AS source_file
FROM cdr_comparison
WHERE NOT landed

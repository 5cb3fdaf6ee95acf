-- CDRs of the month that landed after the month was last rated: in `cdrs`
-- but neither in `rated_cdrs` nor in `rating_exceptions` (every CDR a
-- rating saw is in one of them). The amount is their landed wholesale_eur.
-- On a month not issued yet: run `rate` and `bill` again (reason NULL).
-- Once the month is issued, each is given its fate (`late_carry`, by the
-- file it came in, account.md §4):
--   REGULARISED    the month was billed again after the file landed: the
--                  event is on a later invoice, as a regularisation;
--   TO_REGULARISE  not yet, and the month is within [billing]
--                  regularisation_months of the next month to issue;
--   TOO_LATE       older than that: never invoiced.
WITH rated AS (
    SELECT cdr_id FROM rated_cdrs
    UNION ALL
    SELECT cdr_id FROM rating_exceptions
)
SELECT
    'LATE_CDR' AS kind,
    lc.state AS reason,
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
LEFT JOIN late_carry lc ON lc.source_file = c.source_file
WHERE NOT EXISTS (SELECT 1 FROM rated r WHERE r.cdr_id = c.cdr_id)

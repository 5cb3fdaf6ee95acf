-- CDRs of the month that landed after the month was last rated: in `cdrs`
-- but neither in `rated_cdrs` nor in `rating_exceptions` (every CDR a
-- rating saw is in one of them). Once the month is issued it is never rated
-- again, so these are the events delivered late: never invoiced, their
-- wholesale cost paid. (On a month not issued yet: run `rate` and `bill`
-- again.) The amount is their landed wholesale_eur.
WITH rated AS (
    SELECT cdr_id FROM rated_cdrs
    UNION ALL
    SELECT cdr_id FROM rating_exceptions
)
SELECT
    'LATE_CDR' AS kind,
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
WHERE NOT EXISTS (SELECT 1 FROM rated r WHERE r.cdr_id = c.cdr_id)

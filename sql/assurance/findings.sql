-- rating.md §8: the `assurance` dataset, one row per finding, every kind
-- with the same columns (NULL where a column does not apply):
--   kind            BILLED_NOT_LANDED, LANDED_NOT_BILLED, AMOUNT_MISMATCH,
--                   BILLED_TWICE, UNBILLED_ACTIVE_LINE, TERMINATED_LINE_SUBSCRIPTION,
--                   RATING_EXCEPTION, LATE_CDR
--   reason          the rating exception's reason
--   cdr_id, event_type, start_time, source_file   for findings on a CDR
--   msisdn, customer_id
--   landed_wholesale  our landed copy's wholesale_eur (or the line's traffic)
--   billed_wholesale  the MVNE's BilledCDRs wholesale_eur
--   amount          the finding's euro figure, which the summary adds up
--                   (each kind's file says which it is)
--   cdrs            UNBILLED_ACTIVE_LINE: the line's CDRs of the month
--   terminated_on, period_start, period_end, days   for line findings
WITH all_findings AS (
    SELECT * FROM billed_not_landed
    UNION ALL SELECT * FROM landed_not_billed
    UNION ALL SELECT * FROM amount_mismatch
    UNION ALL SELECT * FROM billed_twice
    UNION ALL SELECT * FROM unbilled_active_lines
    UNION ALL SELECT * FROM terminated_line_subscriptions
    UNION ALL SELECT * FROM exception_leakage
    UNION ALL SELECT * FROM late_cdrs
)
SELECT
    CAST(kind AS VARCHAR) AS kind,
    CAST(reason AS VARCHAR) AS reason,
    CAST(cdr_id AS VARCHAR) AS cdr_id,
    CAST(msisdn AS VARCHAR) AS msisdn,
    CAST(customer_id AS VARCHAR) AS customer_id,
    CAST(event_type AS VARCHAR) AS event_type,
    start_time,
    CAST(landed_wholesale AS DECIMAL(18, 6)) AS landed_wholesale,
    CAST(billed_wholesale AS DECIMAL(18, 6)) AS billed_wholesale,
    CAST(amount AS DECIMAL(18, 6)) AS amount,
    CAST(cdrs AS BIGINT) AS cdrs,
    CAST(terminated_on AS DATE) AS terminated_on,
    CAST(period_start AS DATE) AS period_start,
    CAST(period_end AS DATE) AS period_end,
    CAST(days AS BIGINT) AS days,
    CAST(source_file AS VARCHAR) AS source_file
FROM all_findings
ORDER BY kind, reason NULLS FIRST, msisdn, cdr_id, period_start

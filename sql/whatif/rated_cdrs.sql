-- docs/WHATIF.md: the events the alternative rated, as `rate` writes them
-- to the rated_cdrs dataset (rated_events.sql's columns but `exception`),
-- for usage_lines.sql and margin.sql. Nothing is written to the lake.
SELECT
    cdr_id,
    msisdn,
    customer_id,
    subscription_start,
    event_type,
    start_time,
    local_date,
    roaming_zone,
    zone,
    allowance_group,
    billed_qty,
    covered_qty,
    overage_qty,
    amount,
    wholesale,
    margin,
    source_file
FROM rated_events
WHERE exception IS NULL

-- What each allowance pool of the month used so far (rating.md §4): the
-- sum of its rated events' billed quantities, their overage and amount,
-- their count, and its last event (start_time as an instant, then cdr_id
-- in byte order), the order a later event is compared with (late_pools.sql).
--
-- `run_rated` holds this run's rated events: every event of the pools rated
-- again (`late_pools`, and the pools of `changed_lines`), only the new
-- events of the others, which add to what `previous_usage` says they used.
-- A whole-month rate has no previous usage and rates every event. The
-- pools continued are those of continued_usage.sql.
WITH added AS (
    SELECT
        msisdn,
        pool_start,
        allowance_group,
        SUM(billed_qty) AS consumed,
        SUM(overage_qty) AS overage_qty,
        CAST(SUM(amount) AS DECIMAL(18, 6)) AS overage_amount,
        COUNT(*) AS events,
        MAX(start_time) AS last_event_time,
        last_value(cdr_id ORDER BY start_time, cdr_id) AS last_cdr_id
    FROM run_rated
    WHERE allowance_group IS NOT NULL AND pool_start IS NOT NULL
    GROUP BY msisdn, pool_start, allowance_group
),
both_parts AS (
    SELECT * FROM continued_usage
    UNION ALL
    SELECT * FROM added
)
SELECT
    msisdn,
    pool_start,
    allowance_group,
    SUM(consumed) AS consumed,
    SUM(overage_qty) AS overage_qty,
    CAST(SUM(overage_amount) AS DECIMAL(18, 6)) AS overage_amount,
    SUM(events) AS events,
    MAX(last_event_time) AS last_event_time,
    last_value(last_cdr_id ORDER BY last_event_time, last_cdr_id) AS last_cdr_id
FROM both_parts
GROUP BY msisdn, pool_start, allowance_group

-- The `consumption` dataset: each allowance pool of the month (rating.md
-- §4, pools.sql: line, plan and group) with what its rated events used so
-- far (pool_usage.sql), as of the run that wrote it. Quantities are in
-- billed units: seconds for voice, KB for data, messages; an unlimited
-- pool has no allowance and nothing remaining.
WITH pool_plans AS (
    -- The plan and customer of the pool's first subscription row.
    SELECT msisdn, start_date AS pool_start, plan_code, customer_id
    FROM month_subscriptions
)
SELECT
    p.msisdn,
    s.customer_id,
    s.plan_code,
    p.pool_start,
    p.allowance_group,
    p.unlimited,
    CASE WHEN p.unlimited THEN NULL ELSE CAST(p.quantity AS BIGINT) END AS allowance,
    COALESCE(u.consumed, 0) AS consumed,
    CASE
        WHEN p.unlimited THEN NULL
        ELSE GREATEST(CAST(p.quantity AS BIGINT) - COALESCE(u.consumed, 0), 0)
    END AS remaining,
    COALESCE(u.overage_qty, 0) AS overage_qty,
    COALESCE(u.overage_amount, CAST(0 AS DECIMAL(18, 6))) AS overage_amount,
    COALESCE(u.events, 0) AS events,
    u.last_event_time,
    u.last_cdr_id,
    r.as_of,
    r.last_delivery
FROM pools p
JOIN pool_plans s ON s.msisdn = p.msisdn AND s.pool_start = p.pool_start
LEFT JOIN pool_usage u
    ON u.msisdn = p.msisdn
   AND u.pool_start = p.pool_start
   AND u.allowance_group = p.allowance_group
CROSS JOIN rating_run r
ORDER BY p.msisdn, p.pool_start, p.allowance_group

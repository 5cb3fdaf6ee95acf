-- The `whatif` dataset (docs/WHATIF.md): per alternative (`alternatives`,
-- in report order), customer kind and plan, what the month's subscription
-- rows and usage would have earned, HT, against what the actual tariffs
-- earn (the alternative ACTUAL: each line on its own grid, plan and
-- options, which re-rates to the invoices' services HT), and the margin
-- over the MVNE's wholesale cost of the same traffic.
--
-- `alternative_margins` holds every alternative's rows of
-- alternative_margin.sql. revenue_ht = subscription_ht + options_ht +
-- usage_ht (no equipment); difference_ht = revenue_ht - actual_revenue_ht
-- (negative: the alternative earns less); margin = revenue_ht - wholesale.
WITH segments AS (
    SELECT
        alternative,
        customer_kind,
        plan_code,
        COUNT(DISTINCT customer_id) AS customers,
        COUNT(DISTINCT msisdn) AS lines,
        SUM(subscription_ht) AS subscription_ht,
        SUM(options_ht) AS options_ht,
        SUM(usage_ht) AS usage_ht,
        SUM(subscription_ht + options_ht + usage_ht) AS revenue_ht,
        SUM(wholesale) AS wholesale,
        SUM(unpriced_cdrs) AS unpriced_cdrs
    FROM alternative_margins
    GROUP BY alternative, customer_kind, plan_code
),
actual AS (
    SELECT customer_kind, plan_code, revenue_ht
    FROM segments
    WHERE alternative = 'ACTUAL'
)
SELECT
    a.position,
    s.alternative,
    a.kind AS alternative_kind,
    a.grid,
    a.offer,
    a.label,
    s.customer_kind,
    s.plan_code,
    s.customers,
    s.lines,
    CAST(s.subscription_ht AS DECIMAL(18, 2)) AS subscription_ht,
    CAST(s.options_ht AS DECIMAL(18, 2)) AS options_ht,
    CAST(s.usage_ht AS DECIMAL(18, 2)) AS usage_ht,
    CAST(s.revenue_ht AS DECIMAL(18, 2)) AS revenue_ht,
    CAST(COALESCE(t.revenue_ht, 0) AS DECIMAL(18, 2)) AS actual_revenue_ht,
    CAST(s.revenue_ht - COALESCE(t.revenue_ht, 0) AS DECIMAL(18, 2)) AS difference_ht,
    CAST(s.wholesale AS DECIMAL(18, 6)) AS wholesale,
    CAST(s.revenue_ht - s.wholesale AS DECIMAL(18, 6)) AS margin,
    CAST(s.unpriced_cdrs AS BIGINT) AS unpriced_cdrs
FROM segments s
JOIN alternatives a ON a.alternative = s.alternative
LEFT JOIN actual t
    ON t.customer_kind = s.customer_kind
   AND (t.plan_code IS NOT DISTINCT FROM s.plan_code)
ORDER BY a.position, s.customer_kind, s.plan_code

-- What the rating of a line's events depends on in subscriptions.csv, as
-- one text per line of the month: its rows overlapping the month (dates,
-- customer, plan, grid) with their options. A line whose text changed
-- since the last run is rated again whole (changed_lines.sql); the other
-- price tables are compared whole by `rate` (a change rates the month
-- again).
WITH row_options AS (
    SELECT msisdn, start_date, string_agg(option_code, ',' ORDER BY option_code) AS options
    FROM subscription_options
    GROUP BY msisdn, start_date
),
row_texts AS (
    SELECT
        s.msisdn,
        s.start_date,
        concat_ws(
            '|',
            CAST(s.start_date AS VARCHAR),
            COALESCE(CAST(s.end_date AS VARCHAR), ''),
            s.customer_id,
            s.plan_code,
            s.rate_grid,
            COALESCE(o.options, '')
        ) AS row_text
    FROM month_subscriptions s
    LEFT JOIN row_options o ON o.msisdn = s.msisdn AND o.start_date = s.start_date
)
SELECT msisdn, string_agg(row_text, ';' ORDER BY start_date) AS signature
FROM row_texts
GROUP BY msisdn

-- The `e_reporting` dataset (docs/ACCOUNTING.md, "E-reporting"): the
-- totals of sales to consumers (B2C) that the French e-invoicing reform asks
-- to transmit (e-reporting of transactions): HT, VAT and TTC per VAT rate
-- and per period, a period being the ten-day décade (1-10, 11-20, 21-end of
-- month: VAT "réel normal mensuel") or the calendar month (other regimes),
-- as `[accounting] e_reporting_period` says.
--
-- A document counts on its issue date (the journal's entry_date), so the
-- invoices of a month, issued on the 1st of the next, fall in its first
-- décade. Credit notes count with their negative amounts. The totals of a
-- period over several billing months are a GROUP BY over the partitions.
WITH b2c AS (
    SELECT
        j.*,
        CAST(date_trunc('month', j.entry_date) AS DATE) AS month_start,
        date_part('day', j.entry_date) AS day_of_month,
        a.e_reporting_period
    FROM sales_journal j
    CROSS JOIN accounting a
    WHERE j.customer_kind = 'B2C'
),
periods AS (
    SELECT
        *,
        CASE
            WHEN e_reporting_period = 'MONTH' OR day_of_month <= 10 THEN month_start
            WHEN day_of_month <= 20 THEN month_start + INTERVAL '10 days'
            ELSE month_start + INTERVAL '20 days'
        END AS period_start,
        CASE
            WHEN e_reporting_period = 'DECADE' AND day_of_month <= 10 THEN month_start + INTERVAL '9 days'
            WHEN e_reporting_period = 'DECADE' AND day_of_month <= 20 THEN month_start + INTERVAL '19 days'
            ELSE month_start + INTERVAL '1 month' - INTERVAL '1 day'
        END AS period_end
    FROM b2c
)
SELECT
    e_reporting_period AS period_type,
    period_start,
    period_end,
    vat_rate,
    'EUR' AS currency,
    COUNT(*) AS documents,
    CAST(SUM(total_ht) AS DECIMAL(18, 2)) AS total_ht,
    CAST(SUM(vat) AS DECIMAL(18, 2)) AS vat,
    CAST(SUM(total_ttc) AS DECIMAL(18, 2)) AS total_ttc
FROM periods
GROUP BY e_reporting_period, period_start, period_end, vat_rate
ORDER BY period_start, vat_rate

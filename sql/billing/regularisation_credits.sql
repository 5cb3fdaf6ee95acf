-- account.md §4: the negative differences of a corrected month are credited
-- by one note per customer and month, at the VAT rate of the lines (one
-- rate until VAT by product and place), citing the month's invoice, or for
-- a customer without one the latest invoice that regularised the month.
WITH credits AS (
    SELECT customer_id, period, vat_rate, CAST(-SUM(amount_ht) AS DECIMAL(18, 2)) AS total_ht
    FROM regularisation_deltas
    WHERE amount_ht < 0
    GROUP BY customer_id, period, vat_rate
),
cited AS (
    SELECT customer_id, month, period, invoice_number,
           ROW_NUMBER() OVER (
               PARTITION BY customer_id, period
               ORDER BY CASE WHEN month = period THEN 0 ELSE 1 END, month DESC
           ) AS rank
    FROM (
        SELECT DISTINCT l.customer_id, l.month,
               CASE WHEN l.kind = 'REGULARISATION' THEN l.period ELSE l.month END AS period,
               l.invoice_number
        FROM invoiced_lines l
        CROSS JOIN params p
        WHERE l.month < p.month
    ) l
)
SELECT
    c.customer_id,
    c.period,
    COALESCE(i.invoice_number, '') AS invoice_number,
    COALESCE(i.month, '') AS invoice_month,
    COALESCE(k.kind, '') AS customer_kind,
    c.vat_rate,
    c.total_ht
FROM credits c
LEFT JOIN cited i ON i.customer_id = c.customer_id AND i.period = c.period AND i.rank = 1
LEFT JOIN customers k ON k.customer_id = c.customer_id
ORDER BY c.customer_id, c.period

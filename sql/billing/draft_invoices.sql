-- rating.md §6: one invoice per customer with at least one line (a
-- subscription day, a charge, a termination fee, or a regularisation of an
-- earlier month: account.md §4-6). total_ht = sum of the lines,
-- total_ttc = total_ht + vat.
--
-- rating.md §6, "VAT by product and place": VAT per category and rate,
-- round(sum of the lines of that category and rate x rate, 2), half away
-- from zero (the CAST); `vat` is the sum of these. With every line S at
-- 20 % it is round(total_ht x 0.20, 2), as it always was.
-- Ordered by customer_id: numbers are assigned in that order (§7).
WITH vat_groups AS (
    SELECT
        customer_id,
        CAST(SUM(amount_ht) * vat_rate * 0.01 AS DECIMAL(18, 2)) AS vat
    FROM draft_lines
    GROUP BY customer_id, vat_category, vat_rate
),
vats AS (
    SELECT customer_id, SUM(vat) AS vat FROM vat_groups GROUP BY customer_id
),
totals AS (
    SELECT
        customer_id,
        SUM(CASE WHEN kind = 'SUBSCRIPTION' THEN amount_ht ELSE 0 END) AS subscription_ht,
        SUM(CASE WHEN kind = 'OPTION' THEN amount_ht ELSE 0 END) AS options_ht,
        SUM(CASE WHEN kind = 'USAGE' THEN amount_ht ELSE 0 END) AS usage_ht,
        SUM(CASE WHEN kind = 'EQUIPMENT' THEN amount_ht ELSE 0 END) AS equipment_ht,
        SUM(CASE WHEN kind IN ('CHARGE', 'TERMINATION_FEE') THEN amount_ht ELSE 0 END) AS charges_ht,
        SUM(CASE WHEN kind = 'REGULARISATION' THEN amount_ht ELSE 0 END) AS regularisation_ht,
        SUM(amount_ht) AS total_ht
    FROM draft_lines
    GROUP BY customer_id
)
SELECT
    t.customer_id,
    c.kind AS customer_kind,
    c.payment_method,
    CAST(t.subscription_ht AS DECIMAL(18, 2)) AS subscription_ht,
    CAST(t.options_ht AS DECIMAL(18, 2)) AS options_ht,
    CAST(t.usage_ht AS DECIMAL(18, 2)) AS usage_ht,
    CAST(t.equipment_ht AS DECIMAL(18, 2)) AS equipment_ht,
    CAST(t.charges_ht AS DECIMAL(18, 2)) AS charges_ht,
    CAST(t.regularisation_ht AS DECIMAL(18, 2)) AS regularisation_ht,
    CAST(t.total_ht AS DECIMAL(18, 2)) AS total_ht,
    CAST(v.vat AS DECIMAL(18, 2)) AS vat,
    CAST(t.total_ht + v.vat AS DECIMAL(18, 2)) AS total_ttc
FROM totals t
JOIN vats v ON v.customer_id = t.customer_id
JOIN customers c ON c.customer_id = t.customer_id
ORDER BY t.customer_id

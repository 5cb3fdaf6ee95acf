-- account.md §4: the negative differences of a corrected month are credited
-- by one note per customer and month, citing the month's invoice, or for a
-- customer without one the latest invoice that regularised the month.
--
-- rating.md §6: each credited line keeps the VAT category and rate of the
-- line it corrects, and the note's VAT is computed like an invoice's, per
-- category and rate: `vat` = sum of round(credited HT of the category and
-- rate x rate, 2) (`regularisation_credit_vat`, which the ledger keeps per
-- note). `vat_rate` is the note's main rate, that of its largest base (the
-- highest rate on a tie): one figure for the `credit_notes` dataset, whose
-- exact breakdown is `credit_note_vat` (docs/CREDIT_NOTES.md).
WITH per_rate AS (
    SELECT
        customer_id, period, vat_category, vat_rate, base_ht,
        ROW_NUMBER() OVER (
            PARTITION BY customer_id, period ORDER BY base_ht DESC, vat_rate DESC, vat_category
        ) AS rank
    FROM regularisation_credit_vat
),
credits AS (
    SELECT
        customer_id, period,
        CAST(SUM(base_ht) AS DECIMAL(18, 2)) AS total_ht,
        CAST(SUM(vat) AS DECIMAL(18, 2)) AS vat
    FROM regularisation_credit_vat
    GROUP BY customer_id, period
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
    m.vat_rate,
    c.total_ht,
    c.vat
FROM credits c
JOIN per_rate m ON m.customer_id = c.customer_id AND m.period = c.period AND m.rank = 1
LEFT JOIN cited i ON i.customer_id = c.customer_id AND i.period = c.period AND i.rank = 1
LEFT JOIN customers k ON k.customer_id = c.customer_id
ORDER BY c.customer_id, c.period

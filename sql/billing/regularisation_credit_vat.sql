-- account.md §4 and rating.md §6: the VAT of each regularisation credit
-- note (one per customer and corrected month) per VAT category and rate of
-- the lines it credits: base = the credited HT (positive), vat =
-- round(base x rate, 2), half away from zero, as draft_invoices.sql
-- computes an invoice's; `equipment_ht` is the part of the base that
-- credits handsets (the sales journal's equipment account), and the
-- category's exemption text (one of them should the lines of an E category
-- have several).
SELECT
    customer_id,
    period,
    vat_category,
    vat_rate,
    MAX(vat_exemption) AS vat_exemption,
    CAST(-SUM(amount_ht) AS DECIMAL(18, 2)) AS base_ht,
    CAST(-SUM(amount_ht) * vat_rate * 0.01 AS DECIMAL(18, 2)) AS vat,
    CAST(-SUM(CASE WHEN kind = 'EQUIPMENT' THEN amount_ht ELSE 0 END) AS DECIMAL(18, 2))
        AS equipment_ht
FROM regularisation_deltas
WHERE amount_ht < 0
GROUP BY customer_id, period, vat_category, vat_rate
ORDER BY customer_id, period, vat_category, vat_rate

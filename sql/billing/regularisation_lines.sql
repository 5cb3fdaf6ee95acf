-- account.md §4: each positive difference is a REGULARISATION line of the
-- customer's invoice for the month billed, with the original line's label,
-- the month it corrects (`period`), the quantity difference and the amount.
SELECT
    customer_id,
    'REGULARISATION' AS kind,
    msisdn,
    label,
    code,
    event_type,
    zone,
    quantity,
    unit_price,
    amount_ht,
    period_start,
    period_end,
    line_key,
    period,
    vat_category,
    vat_rate,
    vat_exemption
FROM regularisation_deltas
WHERE amount_ht > 0

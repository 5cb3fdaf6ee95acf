-- account.md §4: each positive difference is a REGULARISATION line of the
-- customer's invoice for the month billed, with the original line's label,
-- the month it corrects (`period`), the quantity difference and the amount.
-- Its text columns are read back from the lake's invoice lines (Utf8View):
-- cast to Utf8, the type of the month's own lines, so that every month's
-- `invoice_lines` partition has the same schema.
SELECT
    arrow_cast(customer_id, 'Utf8') AS customer_id,
    'REGULARISATION' AS kind,
    arrow_cast(msisdn, 'Utf8') AS msisdn,
    arrow_cast(label, 'Utf8') AS label,
    arrow_cast(code, 'Utf8') AS code,
    arrow_cast(event_type, 'Utf8') AS event_type,
    arrow_cast(zone, 'Utf8') AS zone,
    quantity,
    unit_price,
    amount_ht,
    period_start,
    period_end,
    arrow_cast(line_key, 'Utf8') AS line_key,
    arrow_cast(period, 'Utf8') AS period,
    arrow_cast(vat_category, 'Utf8') AS vat_category,
    vat_rate
FROM regularisation_deltas
WHERE amount_ht > 0

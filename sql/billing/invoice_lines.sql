-- The `invoice_lines` dataset: every line with its invoice number, in
-- invoice order: subscriptions, options, usage, equipment, charges,
-- termination fees, then the regularisations of earlier months by period.
SELECT
    n.invoice_number,
    l.customer_id,
    l.kind,
    l.msisdn,
    l.label,
    l.code,
    l.event_type,
    l.zone,
    l.quantity,
    l.unit_price,
    l.amount_ht,
    l.period_start,
    l.period_end,
    l.line_key,
    l.period,
    l.vat_category,
    l.vat_rate,
    l.vat_exemption
FROM draft_lines l
JOIN invoice_numbers n ON n.customer_id = l.customer_id
ORDER BY
    n.invoice_number,
    CASE l.kind
        WHEN 'SUBSCRIPTION' THEN 1 WHEN 'OPTION' THEN 2 WHEN 'USAGE' THEN 3 WHEN 'EQUIPMENT' THEN 4
        WHEN 'CHARGE' THEN 5 WHEN 'TERMINATION_FEE' THEN 6 ELSE 7
    END,
    l.period,
    l.line_key,
    l.msisdn,
    l.period_start,
    l.code,
    l.event_type,
    l.zone

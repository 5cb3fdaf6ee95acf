-- The lines of the month's invoices in the order the document prints
-- them: per invoice, subscriptions, options, usage, equipment.
SELECT
    invoice_number,
    kind,
    msisdn,
    label,
    code,
    event_type,
    zone,
    quantity,
    unit_price,
    amount_ht,
    period_start,
    period_end
FROM invoice_lines
ORDER BY
    invoice_number,
    CASE kind WHEN 'SUBSCRIPTION' THEN 1 WHEN 'OPTION' THEN 2 WHEN 'USAGE' THEN 3 ELSE 4 END,
    msisdn,
    period_start,
    code,
    event_type,
    zone

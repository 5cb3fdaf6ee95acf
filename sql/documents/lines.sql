-- The lines of the month's invoices in the order the document prints
-- them: per invoice and mobile line, subscriptions and options by period,
-- usage by event type and zone, equipment.
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
    msisdn,
    CASE kind WHEN 'SUBSCRIPTION' THEN 1 WHEN 'OPTION' THEN 2 WHEN 'USAGE' THEN 3 ELSE 4 END,
    CASE WHEN kind = 'USAGE' THEN NULL ELSE period_start END,
    event_type,
    zone,
    code

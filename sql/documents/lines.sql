-- The lines of the month's invoices in the order the document prints
-- them: per invoice and mobile line (the lines without one, such as a
-- charge of the customer, last), subscriptions and options by period,
-- usage by event type and zone, equipment, charges, termination fees, then
-- the regularisations of earlier months (account.md §4) by the month they
-- correct. Each line with its VAT category, rate and exemption text.
SELECT
    invoice_number,
    customer_id,
    kind,
    COALESCE(msisdn, '') AS msisdn,
    label,
    code,
    event_type,
    zone,
    quantity,
    unit_price,
    amount_ht,
    period_start,
    period_end,
    period,
    vat_category,
    vat_rate,
    -- The exemption text (rating.md §6); a month billed before the column
    -- existed has it as NULL (`render.rs`), the category's text then.
    COALESCE(vat_exemption, '') AS vat_exemption
FROM invoice_lines
ORDER BY
    invoice_number,
    customer_id,
    CASE WHEN COALESCE(msisdn, '') = '' THEN 1 ELSE 0 END,
    msisdn,
    CASE kind
        WHEN 'SUBSCRIPTION' THEN 1 WHEN 'OPTION' THEN 2 WHEN 'USAGE' THEN 3 WHEN 'EQUIPMENT' THEN 4
        WHEN 'CHARGE' THEN 5 WHEN 'TERMINATION_FEE' THEN 6 WHEN 'REGULARISATION' THEN 7 ELSE 8
    END,
    CASE WHEN kind = 'REGULARISATION' THEN period END,
    CASE WHEN kind = 'USAGE' THEN NULL ELSE period_start END,
    event_type,
    zone,
    code,
    label

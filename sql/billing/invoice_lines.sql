-- The `invoice_lines` dataset: every line with its invoice number, in
-- invoice order: subscriptions, options, usage, equipment, charges,
-- termination fees, then the regularisations of earlier months by period.
-- Text columns are written as Utf8 whatever their source (a CSV table, a
-- Parquet dataset read back), so that every month's partition has the same
-- schema.
WITH numbered AS (
    SELECT
        n.invoice_number,
        l.*,
        ROW_NUMBER() OVER (
            ORDER BY
                n.invoice_number,
                CASE l.kind
                    WHEN 'SUBSCRIPTION' THEN 1 WHEN 'OPTION' THEN 2 WHEN 'USAGE' THEN 3
                    WHEN 'EQUIPMENT' THEN 4 WHEN 'CHARGE' THEN 5 WHEN 'TERMINATION_FEE' THEN 6
                    ELSE 7
                END,
                l.period,
                l.line_key,
                l.msisdn,
                l.period_start,
                l.code,
                l.event_type,
                l.zone
        ) AS position
    FROM draft_lines l
    JOIN invoice_numbers n ON n.customer_id = l.customer_id
)
SELECT
    arrow_cast(invoice_number, 'Utf8') AS invoice_number,
    arrow_cast(customer_id, 'Utf8') AS customer_id,
    arrow_cast(kind, 'Utf8') AS kind,
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
FROM numbered
ORDER BY position

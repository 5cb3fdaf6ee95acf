-- rating.md §6.2: one OPTION line per option of each subscription row with
-- billable days, prorated like the subscription; monthly_fee_with_handset
-- when the row is with_handset. Version in force on the first billable day,
-- with its VAT code (month_lines.sql).
SELECT
    b.customer_id,
    'OPTION' AS kind,
    b.msisdn,
    o.label AS label,
    so.option_code AS code,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS zone,
    b.billable_days AS quantity,
    CASE WHEN b.with_handset THEN o.monthly_fee_with_handset ELSE o.monthly_fee END AS unit_price,
    CAST(
        CASE WHEN b.with_handset THEN o.monthly_fee_with_handset ELSE o.monthly_fee END
        * b.billable_days / p.days_in_month
        AS DECIMAL(18, 2)
    ) AS amount_ht,
    b.period_start,
    b.billable_end AS period_end,
    concat('OPTION|', b.msisdn, '|', CAST(b.start_date AS VARCHAR), '|', so.option_code) AS line_key,
    o.vat_code AS product_vat_code,
    o.vat_exemption AS product_vat_exemption
FROM billable_subscriptions b
CROSS JOIN params p
JOIN subscription_options so
    ON so.msisdn = b.msisdn AND so.start_date = b.start_date
LEFT JOIN option_versions o
    ON o.option_code = so.option_code
   AND o.valid_from <= b.period_start
   AND (o.valid_to IS NULL OR b.period_start < o.valid_to)

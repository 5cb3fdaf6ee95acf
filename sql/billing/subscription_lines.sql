-- rating.md §6.1: one SUBSCRIPTION line per subscription row with billable
-- days: round(monthly_fee x billable_days / days_in_month, 2), the fee of
-- plan_fees.csv for the plan, commitment and handset flag with the latest
-- valid_from on or before the first billable day. A full month is exactly
-- the monthly fee. A missing fee leaves unit_price NULL: `bill` refuses the
-- month and names the row. The fee row's VAT code goes with the line
-- (month_lines.sql).
SELECT
    b.customer_id,
    'SUBSCRIPTION' AS kind,
    b.msisdn,
    pl.label AS label,
    b.plan_code AS code,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS zone,
    b.billable_days AS quantity,
    f.monthly_fee AS unit_price,
    CAST(f.monthly_fee * b.billable_days / p.days_in_month AS DECIMAL(18, 2)) AS amount_ht,
    b.period_start,
    b.billable_end AS period_end,
    concat('SUBSCRIPTION|', b.msisdn, '|', CAST(b.start_date AS VARCHAR)) AS line_key,
    f.vat_code AS product_vat_code,
    f.vat_exemption AS product_vat_exemption
FROM billable_subscriptions b
CROSS JOIN params p
JOIN plans pl ON pl.plan_code = b.plan_code
LEFT JOIN plan_fee_versions f
    ON f.plan_code = b.plan_code
   AND f.commitment_months = b.commitment_months
   AND f.with_handset = b.with_handset
   AND f.valid_from <= b.period_start
   AND (f.valid_to IS NULL OR b.period_start < f.valid_to)

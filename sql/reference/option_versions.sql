-- options.csv is versioned: an option's fees and allowance apply from
-- valid_from until the option's next row. An empty fee with handset is the
-- plain fee (formats.md).
SELECT
    option_code,
    label,
    monthly_fee,
    COALESCE(monthly_fee_with_handset, monthly_fee) AS monthly_fee_with_handset,
    allowance_group,
    allowance_qty,
    valid_from,
    vat_code,
    vat_exemption,
    LEAD(valid_from) OVER (PARTITION BY option_code ORDER BY valid_from) AS valid_to
FROM options

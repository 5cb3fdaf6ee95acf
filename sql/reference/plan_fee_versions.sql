-- plan_fees.csv is versioned: a fee applies from valid_from until the next
-- row of the same plan, commitment and handset flag (rating.md §6.1), with
-- its VAT code (rating.md §6, "VAT by product and place").
SELECT
    plan_code,
    commitment_months,
    with_handset,
    monthly_fee,
    valid_from,
    vat_code,
    vat_exemption,
    LEAD(valid_from) OVER (
        PARTITION BY plan_code, commitment_months, with_handset ORDER BY valid_from
    ) AS valid_to
FROM plan_fees

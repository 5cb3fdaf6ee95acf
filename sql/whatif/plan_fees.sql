-- docs/WHATIF.md: the monthly fees under one alternative. A benchmark offer
-- charges its own monthly_fee for every plan, commitment and handset flag,
-- in every version, so subscription_lines.sql prorates the offer's fee by
-- the row's billable days exactly as it prorates a plan's (rating.md §6.1).
-- Otherwise the fees are those of plan_fees.csv.
SELECT
    f.plan_code,
    f.commitment_months,
    f.with_handset,
    CASE WHEN w.offer IS NULL THEN f.monthly_fee ELSE b.monthly_fee END AS monthly_fee,
    f.valid_from,
    f.vat_code,
    f.vat_exemption
FROM reference_plan_fees f
CROSS JOIN scenario w
LEFT JOIN benchmark b ON b.offer = w.offer

-- plan_fees.csv is versioned: a fee applies from valid_from until the next
-- row of the same plan, commitment and handset flag (rating.md §6.1).
SELECT
    plan_code,
    commitment_months,
    with_handset,
    monthly_fee,
    valid_from,
    LEAD(valid_from) OVER (
        PARTITION BY plan_code, commitment_months, with_handset ORDER BY valid_from
    ) AS valid_to
FROM plan_fees

-- handsets.csv is versioned per model, plan and commitment; the row with no
-- plan and no commitment is the bare price (tarif NU).
SELECT
    model,
    plan_code,
    commitment_months,
    price,
    valid_from,
    vat_code,
    vat_exemption,
    LEAD(valid_from) OVER (
        PARTITION BY model, plan_code, commitment_months ORDER BY valid_from
    ) AS valid_to
FROM handsets

-- account.md §5: one CHARGE line per one-off charge of charges.csv dated in
-- the month, or dated in an earlier month and not billed yet (its month was
-- issued before the charge was entered): such a late charge prints its date
-- after its label, "Frais de remplacement SIM (12/10/2026)". A charge is
-- billed once, ever: `bill` registers `billed_charges` (charge_id) from the
-- ledger and records the month's charges when it issues. A charge dated
-- after the month waits for its month. Quantity 1, the amount as entered
-- (in cents, may be negative: a commercial gesture), the charge's date as
-- its period. The charge's own VAT code (charges.csv; S for the charges
-- the pipeline raises).
SELECT
    c.customer_id,
    'CHARGE' AS kind,
    c.msisdn,
    CASE
        WHEN c.charge_date < p.month_start
            THEN concat(c.label, ' (', to_char(c.charge_date, '%d/%m/%Y'), ')')
        ELSE c.label
    END AS label,
    c.charge_id AS code,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS zone,
    CAST(1 AS BIGINT) AS quantity,
    c.amount_ht AS unit_price,
    CAST(c.amount_ht AS DECIMAL(18, 2)) AS amount_ht,
    c.charge_date AS period_start,
    c.charge_date AS period_end,
    concat('CHARGE|', c.charge_id) AS line_key,
    c.vat_code AS product_vat_code,
    c.vat_exemption AS product_vat_exemption
FROM charges c
CROSS JOIN params p
WHERE c.charge_date <= p.month_end
  AND c.charge_id NOT IN (SELECT charge_id FROM billed_charges)

-- rating.md §6.4: one EQUIPMENT line per handset sale of the month, priced
-- from handsets.csv for the plan and commitment of the line's subscription
-- on the sale date (latest valid_from on or before it), else at the bare
-- price (tarif NU: the row without plan and commitment).
WITH sales AS (
    SELECT h.*, s.plan_code, s.commitment_months
    FROM handset_sales h
    CROSS JOIN params p
    LEFT JOIN subscriptions s
        ON s.msisdn = h.msisdn
       AND h.sale_date >= s.start_date
       AND (s.end_date IS NULL OR h.sale_date <= s.end_date)
    WHERE h.sale_date >= p.month_start AND h.sale_date <= p.month_end
)
SELECT
    sales.customer_id,
    'EQUIPMENT' AS kind,
    sales.msisdn,
    sales.model AS label,
    sales.sale_id AS code,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS zone,
    CAST(1 AS BIGINT) AS quantity,
    COALESCE(offer.price, bare.price) AS unit_price,
    CAST(COALESCE(offer.price, bare.price) AS DECIMAL(18, 2)) AS amount_ht,
    sales.sale_date AS period_start,
    sales.sale_date AS period_end,
    concat('EQUIPMENT|', sales.sale_id) AS line_key,
    -- The VAT code of the row that prices the sale.
    CASE WHEN offer.price IS NOT NULL THEN offer.vat_code ELSE bare.vat_code END AS product_vat_code,
    CASE WHEN offer.price IS NOT NULL THEN offer.vat_exemption ELSE bare.vat_exemption END
        AS product_vat_exemption
FROM sales
LEFT JOIN handset_versions offer
    ON offer.model = sales.model
   AND offer.plan_code = sales.plan_code
   AND offer.commitment_months = sales.commitment_months
   AND offer.valid_from <= sales.sale_date
   AND (offer.valid_to IS NULL OR sales.sale_date < offer.valid_to)
LEFT JOIN handset_versions bare
    ON bare.model = sales.model
   AND bare.plan_code IS NULL
   AND bare.valid_from <= sales.sale_date
   AND (bare.valid_to IS NULL OR sales.sale_date < bare.valid_to)

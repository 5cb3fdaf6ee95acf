-- rating.md §6: every line the month itself brings to its invoices, before
-- numbering, each with
--   * `line_key`: what identifies the line across re-billings of the month
--     (account.md §4): the kind, the line and the subscription row, option,
--     usage event type and zone, handset sale, charge or commitment it
--     bills;
--   * `period`: the month it bills (a REGULARISATION line keeps the month it
--     corrects, see regularisation_lines.sql);
--   * its VAT category (`vat_category`: S, E, AE, K, G or O, the codes of
--     EN 16931 BT-151), rate (`vat_rate`, percent) and exemption reason
--     (`vat_exemption`, BT-120, NULL for S), by rating.md §6, "VAT by
--     product and place", below.
--
-- The product's code first: each *_lines.sql file gives its line the
-- `vat_code` of the product row that priced it (`product_vat_code`: the plan
-- fee row for a subscription, a termination fee and usage, the option row,
-- the handset row of the sale's price, the charge), S when empty, E exempt
-- with its `vat_exemption` text.
--
-- Then the customer's place (customers.csv: country, empty meaning FR,
-- postcode, kind, vat_number), in the order of the spec:
--   1. FR, postcode 971.., 972.. or 974.. (Guadeloupe, Martinique, La
--      Réunion) but not 97133 or 97150: S at 8.5 %, E exempt, handsets are
--      exports from mainland France: G, "Exonération de TVA, article 262 I
--      du CGI";
--   2. FR, postcode 973.., 975.., 976.., 977.., 978.., 986.., 987.., 988..,
--      or 97133, 97150 (Guyane, Mayotte, the territories outside French
--      VAT): every line O, 0 %, an exempt one too;
--   3. B2B in another EU member state (eu_member_states.sql) with a VAT
--      number: services AE, 0 %, "Autoliquidation" (reverse charge);
--      handsets K, 0 %, "Exonération de TVA, article 262 ter I du CGI"
--      (intra-community supply); E stays E;
--   4. otherwise (mainland France and Corsica, a consumer anywhere, a
--      business outside the EU or without a VAT number): S at 20 %, E
--      exempt.
-- An E product stays E wherever the customer is, except in rule 2 (O);
-- an E handset too (docs/RULES.md §6). O lines print "Hors champ
-- d'application de la TVA".
WITH lines AS (
    SELECT * FROM subscription_lines
    UNION ALL
    SELECT * FROM option_lines
    UNION ALL
    SELECT * FROM usage_lines
    UNION ALL
    SELECT * FROM equipment_lines
    UNION ALL
    SELECT * FROM charge_lines
    UNION ALL
    SELECT * FROM termination_fee_lines
),
places AS (
    SELECT
        c.customer_id,
        CASE
            WHEN c.country = 'FR' AND c.postcode IN ('97133', '97150') THEN 'OUTSIDE'
            WHEN c.country = 'FR' AND substr(c.postcode, 1, 3) IN ('971', '972', '974') THEN 'DOM'
            WHEN c.country = 'FR'
                 AND substr(c.postcode, 1, 3) IN ('973', '975', '976', '977', '978', '986', '987', '988')
                THEN 'OUTSIDE'
            WHEN c.country <> 'FR'
                 AND c.kind = 'B2B'
                 AND COALESCE(trim(c.vat_number), '') <> ''
                 AND eu.country IS NOT NULL
                THEN 'EU_BUSINESS'
            ELSE 'MAINLAND'
        END AS place
    FROM (
        SELECT
            customer_id,
            kind,
            vat_number,
            COALESCE(NULLIF(upper(trim(country)), ''), 'FR') AS country,
            COALESCE(replace(trim(postcode), ' ', ''), '') AS postcode
        FROM customers
    ) c
    LEFT JOIN eu_member_states eu ON eu.country = c.country
),
categorised AS (
    SELECT
        l.*,
        CASE
            WHEN pl.place = 'OUTSIDE' THEN 'O'
            WHEN COALESCE(NULLIF(trim(l.product_vat_code), ''), 'S') = 'E' THEN 'E'
            WHEN pl.place = 'DOM' AND l.kind = 'EQUIPMENT' THEN 'G'
            WHEN pl.place = 'EU_BUSINESS' AND l.kind = 'EQUIPMENT' THEN 'K'
            WHEN pl.place = 'EU_BUSINESS' THEN 'AE'
            ELSE 'S'
        END AS vat_category,
        pl.place
    FROM lines l
    LEFT JOIN places pl ON pl.customer_id = l.customer_id
)
SELECT
    l.customer_id,
    l.kind,
    l.msisdn,
    l.label,
    l.code,
    l.event_type,
    l.zone,
    l.quantity,
    l.unit_price,
    l.amount_ht,
    l.period_start,
    l.period_end,
    l.line_key,
    p.month AS period,
    l.vat_category,
    CAST(
        CASE
            WHEN l.vat_category = 'S' AND l.place = 'DOM' THEN 8.50
            WHEN l.vat_category = 'S' THEN 20.00
            ELSE 0.00
        END
        AS DECIMAL(5, 2)
    ) AS vat_rate,
    CASE l.vat_category
        WHEN 'E' THEN l.product_vat_exemption
        WHEN 'G' THEN 'Exonération de TVA, article 262 I du CGI'
        WHEN 'K' THEN 'Exonération de TVA, article 262 ter I du CGI'
        WHEN 'AE' THEN 'Autoliquidation'
        WHEN 'O' THEN 'Hors champ d''application de la TVA'
    END AS vat_exemption
FROM categorised l
CROSS JOIN params p

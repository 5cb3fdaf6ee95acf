-- rating.md §6.3: one USAGE line per line (msisdn), event type and rating
-- zone: quantity = sum of billed quantities (seconds, KB or messages),
-- amount = round(sum of the event amounts, 2). Lines whose rounded amount is
-- zero (all covered by allowances, free incoming) are left out.
--
-- rating.md §6, "VAT by product and place": usage takes the VAT code of the
-- plan fee row of the subscription row in force for its events (the row
-- `rate` gave each event, `subscription_start`; the fee row in force on the
-- row's first day in the month, as subscription_lines.sql prices it). When
-- two rows of the month have different codes the line is split per code;
-- the part of another code than S has its code at the end of its line key,
-- so that the key of an all-S line is the one it always was (account.md §4).
WITH per_row AS (
    -- The month's events summed per subscription row first: a few rows
    -- per line to look the code up for, not every event.
    SELECT
        customer_id,
        msisdn,
        subscription_start,
        event_type,
        zone,
        SUM(billed_qty) AS quantity,
        SUM(amount) AS amount,
        MIN(local_date) AS period_start,
        MAX(local_date) AS period_end
    FROM rated_cdrs
    GROUP BY customer_id, msisdn, subscription_start, event_type, zone
),
coded AS (
    SELECT
        r.*,
        COALESCE(NULLIF(trim(f.vat_code), ''), 'S') AS vat_code,
        f.vat_exemption
    FROM per_row r
    CROSS JOIN params p
    LEFT JOIN subscriptions s
        ON s.msisdn = r.msisdn AND s.start_date = r.subscription_start
    LEFT JOIN plan_fee_versions f
        ON f.plan_code = s.plan_code
       AND f.commitment_months = s.commitment_months
       AND f.with_handset = s.with_handset
       AND f.valid_from <= CASE WHEN s.start_date > p.month_start THEN s.start_date ELSE p.month_start END
       AND (f.valid_to IS NULL
            OR CASE WHEN s.start_date > p.month_start THEN s.start_date ELSE p.month_start END < f.valid_to)
)
SELECT
    customer_id,
    'USAGE' AS kind,
    msisdn,
    CASE event_type
        WHEN 'VOICE' THEN 'Appels'
        WHEN 'VOICE_IN' THEN 'Appels reçus'
        WHEN 'SMS' THEN 'SMS'
        WHEN 'SMS_IN' THEN 'SMS reçus'
        WHEN 'MMS' THEN 'MMS'
        WHEN 'DATA' THEN 'Internet mobile'
    END AS label,
    CAST(NULL AS VARCHAR) AS code,
    event_type,
    zone,
    SUM(quantity) AS quantity,
    CAST(NULL AS DECIMAL(18, 6)) AS unit_price,
    CAST(SUM(amount) AS DECIMAL(18, 2)) AS amount_ht,
    MIN(period_start) AS period_start,
    MAX(period_end) AS period_end,
    CASE
        WHEN vat_code = 'S' THEN concat('USAGE|', msisdn, '|', event_type, '|', zone)
        ELSE concat('USAGE|', msisdn, '|', event_type, '|', zone, '|', vat_code)
    END AS line_key,
    vat_code AS product_vat_code,
    MAX(vat_exemption) AS product_vat_exemption
FROM coded
GROUP BY customer_id, msisdn, event_type, zone, vat_code
HAVING CAST(SUM(amount) AS DECIMAL(18, 2)) <> 0

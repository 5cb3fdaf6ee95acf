-- rating.md §6.3: one USAGE line per line (msisdn), event type and rating
-- zone: quantity = sum of billed quantities (seconds, KB or messages),
-- amount = round(sum of the event amounts, 2). Lines whose rounded amount is
-- zero (all covered by allowances, free incoming) are left out.
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
    SUM(billed_qty) AS quantity,
    CAST(NULL AS DECIMAL(18, 6)) AS unit_price,
    CAST(SUM(amount) AS DECIMAL(18, 2)) AS amount_ht,
    MIN(local_date) AS period_start,
    MAX(local_date) AS period_end,
    concat('USAGE|', msisdn, '|', event_type, '|', zone) AS line_key
FROM rated_cdrs
GROUP BY customer_id, msisdn, event_type, zone
HAVING CAST(SUM(amount) AS DECIMAL(18, 2)) <> 0

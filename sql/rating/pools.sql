-- rating.md §4: the allowance pool of a line for the month, one per
-- subscription row and allowance group: the plan's allowance plus those of
-- the row's options, unlimited if any of them is (an empty quantity).
-- Counted in billed units: minutes x 60 seconds, MB x 1024 KB, messages.
-- Plans are not versioned; options use the version in force on the row's
-- period_start (see month_subscriptions).
WITH plan_allowances AS (
    SELECT plan_code, 'VOICE_FR' AS allowance_group, voice_fr_min * 60 AS quantity, voice_fr_min IS NULL AS unlimited FROM plans
    UNION ALL
    SELECT plan_code, 'SMS_FR', sms_fr, sms_fr IS NULL FROM plans
    UNION ALL
    SELECT plan_code, 'MMS_FR', mms_fr, mms_fr IS NULL FROM plans
    UNION ALL
    SELECT plan_code, 'DATA_FR', data_fr_mb * 1024, data_fr_mb IS NULL FROM plans
),
option_allowances AS (
    SELECT
        s.msisdn,
        s.start_date,
        o.allowance_group,
        o.allowance_qty * CASE
            WHEN o.allowance_group LIKE 'VOICE%' THEN 60
            WHEN o.allowance_group LIKE 'DATA%' THEN 1024
            ELSE 1
        END AS quantity,
        o.allowance_qty IS NULL AS unlimited
    FROM month_subscriptions s
    JOIN subscription_options so
        ON so.msisdn = s.msisdn AND so.start_date = s.start_date
    JOIN option_versions o
        ON o.option_code = so.option_code
       AND o.valid_from <= s.period_start
       AND (o.valid_to IS NULL OR s.period_start < o.valid_to)
    WHERE o.allowance_group IS NOT NULL
),
grants AS (
    SELECT s.msisdn, s.start_date, a.allowance_group, a.quantity, a.unlimited
    FROM month_subscriptions s
    JOIN plan_allowances a ON a.plan_code = s.plan_code
    UNION ALL
    SELECT msisdn, start_date, allowance_group, quantity, unlimited
    FROM option_allowances
)
SELECT
    msisdn,
    start_date AS subscription_start,
    allowance_group,
    bool_or(unlimited) AS unlimited,
    COALESCE(SUM(quantity), 0) AS quantity
FROM grants
GROUP BY msisdn, start_date, allowance_group

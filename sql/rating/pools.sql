-- rating.md §4: the allowance pools of the month, one per line, plan and
-- allowance group: the plan's allowance plus that of every option on any
-- of the line's subscription rows with that plan overlapping the month,
-- each option counted once, unlimited if any of them is (an empty
-- quantity). A new row for the same plan (an option added or removed,
-- another grid) continues the same pool; a row with another plan opens
-- that plan's pool. Counted in billed units: minutes x 60 seconds,
-- MB x 1024 KB, messages.
--
-- Plans are not versioned. An option's allowance is the version in force
-- on the first day in the month of the row carrying it (its period_start,
-- see month_subscriptions); an option on several rows of the plan takes
-- that of the earliest of them.
WITH plan_allowances AS (
    SELECT plan_code, 'VOICE_FR' AS allowance_group, voice_fr_min * 60 AS quantity, voice_fr_min IS NULL AS unlimited FROM plans
    UNION ALL
    SELECT plan_code, 'SMS_FR', sms_fr, sms_fr IS NULL FROM plans
    UNION ALL
    SELECT plan_code, 'MMS_FR', mms_fr, mms_fr IS NULL FROM plans
    UNION ALL
    SELECT plan_code, 'DATA_FR', data_fr_mb * 1024, data_fr_mb IS NULL FROM plans
),
-- The pool's key, as events.sql gives it to each event: the start_date
-- of the line's first row with the plan this month (a date rather than
-- the plan code: the month's events are sorted by it, narrower is cheaper).
line_plans AS (
    SELECT msisdn, plan_code, MIN(start_date) AS pool_start
    FROM month_subscriptions
    GROUP BY msisdn, plan_code
),
-- Each option once per line and plan, with the first day in the month of
-- the earliest row of that plan carrying it.
line_options AS (
    SELECT s.msisdn, s.plan_code, so.option_code, MIN(s.period_start) AS period_start
    FROM month_subscriptions s
    JOIN subscription_options so
        ON so.msisdn = s.msisdn AND so.start_date = s.start_date
    GROUP BY s.msisdn, s.plan_code, so.option_code
),
option_allowances AS (
    SELECT
        lo.msisdn,
        lo.plan_code,
        o.allowance_group,
        o.allowance_qty * CASE
            WHEN o.allowance_group LIKE 'VOICE%' THEN 60
            WHEN o.allowance_group LIKE 'DATA%' THEN 1024
            ELSE 1
        END AS quantity,
        o.allowance_qty IS NULL AS unlimited
    FROM line_options lo
    JOIN option_versions o
        ON o.option_code = lo.option_code
       AND o.valid_from <= lo.period_start
       AND (o.valid_to IS NULL OR lo.period_start < o.valid_to)
    WHERE o.allowance_group IS NOT NULL
),
grants AS (
    SELECT l.msisdn, l.plan_code, a.allowance_group, a.quantity, a.unlimited
    FROM line_plans l
    JOIN plan_allowances a ON a.plan_code = l.plan_code
    UNION ALL
    SELECT msisdn, plan_code, allowance_group, quantity, unlimited
    FROM option_allowances
)
SELECT
    g.msisdn,
    l.pool_start,
    g.allowance_group,
    bool_or(unlimited) AS unlimited,
    COALESCE(SUM(quantity), 0) AS quantity
FROM grants g
JOIN line_plans l ON l.msisdn = g.msisdn AND l.plan_code = g.plan_code
GROUP BY g.msisdn, l.pool_start, g.allowance_group

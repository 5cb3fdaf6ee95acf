-- docs/WHATIF.md: the options of each subscription row under one
-- alternative. A benchmark offer replaces the plan and its options: the
-- customer would not have our options (no option fee, no option
-- allowance, rating.md §4 and §6.2). Otherwise the options subscribed.
SELECT
    o.msisdn,
    o.start_date,
    o.option_code
FROM reference_subscription_options o
CROSS JOIN scenario w
WHERE w.offer IS NULL

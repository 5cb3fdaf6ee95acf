-- docs/RULES.md §6: a subscription, option or handset without a price in
-- force is never invoiced at zero. The first draft line without an amount
-- (customer, line, kind order): `bill` refuses the month and names it.
SELECT
    kind,
    customer_id,
    msisdn,
    code,
    CAST(period_start AS VARCHAR) AS period_start
FROM draft_lines
WHERE amount_ht IS NULL
ORDER BY customer_id, msisdn, kind
LIMIT 1

-- docs/WHATIF.md: one alternative's margin rows (margin.sql: per customer,
-- line and plan, usage of a line that changed plan mid-month shared
-- between its plans to the cent) with the alternative's name and the
-- customer's kind (customers.csv: B2B or B2C). Traffic without any
-- subscription has no customer: it is no alternative's revenue and is left
-- out. `unpriced_cdrs` counts the events the alternative could not price
-- (NO_DESTINATION, NO_PRICE): their wholesale is in `wholesale`, their
-- revenue is missing.
SELECT
    w.alternative,
    m.customer_id,
    c.kind AS customer_kind,
    m.msisdn,
    m.plan_code,
    m.subscription_ht,
    m.options_ht,
    m.usage_ht,
    m.wholesale,
    m.excepted_cdrs AS unpriced_cdrs
FROM margin m
JOIN customers c ON c.customer_id = m.customer_id
CROSS JOIN scenario w

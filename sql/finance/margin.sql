-- The `margin` dataset (docs/ACCOUNTING.md, "Margin"): one row per
-- customer, line (msisdn) and plan of the month. Retail is what the
-- month's invoices charged (`invoice_lines`, HT, by kind); wholesale is what
-- the MVNE charges for the line's CDRs of the month: the rated ones and the
-- excepted ones (NO_DESTINATION, NO_PRICE: traffic we could not bill still
-- costs), but not a CONFLICTING_DUPLICATE (another copy of a CDR whose
-- billed copy, from the file sorting first, is counted with the rated
-- ones). margin = retail_ht - wholesale. Besides subscriptions, options,
-- usage and equipment, retail counts `charges_ht` (one-off charges and
-- early-termination fees, account.md §5-6) and `regularisation_ht` (the
-- regularisations of earlier months, account.md §4, whose CDRs' cost was
-- counted in their own month).
--
-- The plan of a charge is that of the line's subscription row (subscriptions
-- table): for subscription, option and equipment lines the row in force on
-- the line's first day; for usage, the row of each rated CDR
-- (`subscription_start`). An excepted CDR takes the row holding its date.
-- Traffic without any subscription (NO_SUBSCRIPTION) has no customer nor
-- plan: it gives rows with a NULL customer_id and plan_code, so that the
-- month's wholesale adds up to the MVNE's whole charge.
--
-- One-off charges and termination fees (account.md §5-6) are `charges_ht`,
-- on the charge's line (a charge without a line: msisdn NULL) and the plan
-- of the row holding its date.
--
-- A usage invoice line (one per line, event type and zone) sums the events
-- of every subscription row of the month; when a plan changed mid-month its
-- rounded amount is shared between the plans in proportion to their events'
-- amounts, cumulatively rounded so that the shares add up to the line's
-- amount to the cent: SUM(retail_ht) over the month = the invoices' total HT.
WITH fixed_charges AS (
    SELECT
        l.customer_id,
        l.msisdn,
        COALESCE(s.plan_code, CASE WHEN l.kind = 'SUBSCRIPTION' THEN l.code END) AS plan_code,
        l.kind,
        l.amount_ht
    FROM invoice_lines l
    LEFT JOIN subscriptions s
        ON s.msisdn = l.msisdn
       AND s.customer_id = l.customer_id
       AND l.period_start >= s.start_date
       AND (s.end_date IS NULL OR l.period_start <= s.end_date)
    WHERE l.kind <> 'USAGE'
),
usage_by_plan AS (
    SELECT r.customer_id, r.msisdn, s.plan_code, r.event_type, r.zone, SUM(r.amount) AS amount
    FROM rated_cdrs r
    JOIN subscriptions s
        ON s.msisdn = r.msisdn
       AND s.customer_id = r.customer_id
       AND s.start_date = r.subscription_start
    GROUP BY r.customer_id, r.msisdn, s.plan_code, r.event_type, r.zone
),
usage_cumulated AS (
    SELECT
        l.customer_id,
        l.msisdn,
        u.plan_code,
        l.event_type,
        l.zone,
        CAST(
            l.amount_ht
            * SUM(u.amount) OVER (
                PARTITION BY l.customer_id, l.msisdn, l.event_type, l.zone ORDER BY u.plan_code
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            / SUM(u.amount) OVER (PARTITION BY l.customer_id, l.msisdn, l.event_type, l.zone)
            AS DECIMAL(18, 2)
        ) AS cumulated
    FROM invoice_lines l
    JOIN usage_by_plan u
        ON u.customer_id = l.customer_id
       AND u.msisdn = l.msisdn
       AND u.event_type = l.event_type
       AND u.zone = l.zone
    WHERE l.kind = 'USAGE'
),
usage_charges AS (
    SELECT
        customer_id,
        msisdn,
        plan_code,
        'USAGE' AS kind,
        cumulated - COALESCE(
            LAG(cumulated) OVER (PARTITION BY customer_id, msisdn, event_type, zone ORDER BY plan_code),
            CAST(0 AS DECIMAL(18, 2))
        ) AS amount_ht
    FROM usage_cumulated
),
charges AS (
    SELECT * FROM fixed_charges
    UNION ALL
    SELECT * FROM usage_charges
),
retail AS (
    SELECT
        customer_id,
        msisdn,
        plan_code,
        SUM(CASE WHEN kind = 'SUBSCRIPTION' THEN amount_ht ELSE 0 END) AS subscription_ht,
        SUM(CASE WHEN kind = 'OPTION' THEN amount_ht ELSE 0 END) AS options_ht,
        SUM(CASE WHEN kind = 'USAGE' THEN amount_ht ELSE 0 END) AS usage_ht,
        SUM(CASE WHEN kind = 'EQUIPMENT' THEN amount_ht ELSE 0 END) AS equipment_ht,
        SUM(CASE WHEN kind IN ('CHARGE', 'TERMINATION_FEE') THEN amount_ht ELSE 0 END) AS charges_ht,
        SUM(CASE WHEN kind = 'REGULARISATION' THEN amount_ht ELSE 0 END) AS regularisation_ht
    FROM charges
    GROUP BY customer_id, msisdn, plan_code
),
costs AS (
    SELECT
        r.customer_id,
        r.msisdn,
        s.plan_code,
        COUNT(*) AS rated_cdrs,
        SUM(r.wholesale) AS wholesale_rated,
        CAST(0 AS BIGINT) AS excepted_cdrs,
        CAST(0 AS DECIMAL(18, 6)) AS wholesale_excepted
    FROM rated_cdrs r
    JOIN subscriptions s
        ON s.msisdn = r.msisdn
       AND s.customer_id = r.customer_id
       AND s.start_date = r.subscription_start
    GROUP BY r.customer_id, r.msisdn, s.plan_code
    UNION ALL
    SELECT
        e.customer_id,
        e.msisdn,
        s.plan_code,
        CAST(0 AS BIGINT) AS rated_cdrs,
        CAST(0 AS DECIMAL(18, 6)) AS wholesale_rated,
        COUNT(*) AS excepted_cdrs,
        SUM(e.wholesale) AS wholesale_excepted
    FROM rating_exceptions e
    LEFT JOIN subscriptions s
        ON s.msisdn = e.msisdn
       AND s.customer_id = e.customer_id
       AND e.local_date >= s.start_date
       AND (s.end_date IS NULL OR e.local_date <= s.end_date)
    WHERE e.reason <> 'CONFLICTING_DUPLICATE'
    GROUP BY e.customer_id, e.msisdn, s.plan_code
),
cost_totals AS (
    SELECT
        customer_id,
        msisdn,
        plan_code,
        SUM(rated_cdrs) AS rated_cdrs,
        SUM(excepted_cdrs) AS excepted_cdrs,
        SUM(wholesale_rated) AS wholesale_rated,
        SUM(wholesale_excepted) AS wholesale_excepted
    FROM costs
    GROUP BY customer_id, msisdn, plan_code
),
keys AS (
    SELECT customer_id, msisdn, plan_code FROM retail
    UNION
    SELECT customer_id, msisdn, plan_code FROM cost_totals
),
joined AS (
    SELECT
        k.customer_id,
        k.msisdn,
        k.plan_code,
        CAST(COALESCE(r.subscription_ht, 0) AS DECIMAL(18, 2)) AS subscription_ht,
        CAST(COALESCE(r.options_ht, 0) AS DECIMAL(18, 2)) AS options_ht,
        CAST(COALESCE(r.usage_ht, 0) AS DECIMAL(18, 2)) AS usage_ht,
        CAST(COALESCE(r.equipment_ht, 0) AS DECIMAL(18, 2)) AS equipment_ht,
        CAST(COALESCE(r.charges_ht, 0) AS DECIMAL(18, 2)) AS charges_ht,
        CAST(COALESCE(r.regularisation_ht, 0) AS DECIMAL(18, 2)) AS regularisation_ht,
        CAST(COALESCE(c.rated_cdrs, 0) AS BIGINT) AS rated_cdrs,
        CAST(COALESCE(c.excepted_cdrs, 0) AS BIGINT) AS excepted_cdrs,
        CAST(COALESCE(c.wholesale_rated, 0) AS DECIMAL(18, 6)) AS wholesale_rated,
        CAST(COALESCE(c.wholesale_excepted, 0) AS DECIMAL(18, 6)) AS wholesale_excepted
    FROM keys k
    LEFT JOIN retail r
        ON (r.customer_id IS NOT DISTINCT FROM k.customer_id)
       AND (r.msisdn IS NOT DISTINCT FROM k.msisdn)
       AND (r.plan_code IS NOT DISTINCT FROM k.plan_code)
    LEFT JOIN cost_totals c
        ON (c.customer_id IS NOT DISTINCT FROM k.customer_id)
       AND (c.msisdn IS NOT DISTINCT FROM k.msisdn)
       AND (c.plan_code IS NOT DISTINCT FROM k.plan_code)
)
SELECT
    i.invoice_number,
    j.customer_id,
    j.msisdn,
    j.plan_code,
    j.subscription_ht,
    j.options_ht,
    j.usage_ht,
    j.equipment_ht,
    j.charges_ht,
    j.regularisation_ht,
    CAST(
        j.subscription_ht + j.options_ht + j.usage_ht + j.equipment_ht + j.charges_ht
        + j.regularisation_ht
        AS DECIMAL(18, 2)
    ) AS retail_ht,
    j.rated_cdrs,
    j.excepted_cdrs,
    j.wholesale_rated,
    j.wholesale_excepted,
    CAST(j.wholesale_rated + j.wholesale_excepted AS DECIMAL(18, 6)) AS wholesale,
    CAST(
        j.subscription_ht + j.options_ht + j.usage_ht + j.equipment_ht + j.charges_ht
        + j.regularisation_ht
        - j.wholesale_rated - j.wholesale_excepted
        AS DECIMAL(18, 6)
    ) AS margin
FROM joined j
LEFT JOIN invoices i ON i.customer_id = j.customer_id
ORDER BY j.customer_id NULLS LAST, j.msisdn, j.plan_code NULLS LAST

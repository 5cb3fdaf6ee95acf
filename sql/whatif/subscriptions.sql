-- docs/WHATIF.md: the subscription rows as one alternative sees them
-- (table `scenario`, one row). Under a grid alternative (`scenario.grid`)
-- every row is rated on that grid, as if the line had been sold on it,
-- keeping its plan, options, commitment and dates (rating.md §2: "the
-- line's rate_grid"). Under the actual alternative and under a benchmark
-- offer each row keeps its own grid (an offer replaces prices only for what
-- it prices, see rate_grids.sql). `reference_subscriptions` is
-- subscriptions.csv as loaded.
SELECT
    s.msisdn,
    s.customer_id,
    s.plan_code,
    s.commitment_months,
    s.with_handset,
    COALESCE(w.grid, s.rate_grid) AS rate_grid,
    s.options,
    s.start_date,
    s.end_date
FROM reference_subscriptions s
CROSS JOIN scenario w

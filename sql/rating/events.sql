-- rating.md §1 and §2: each CDR of the month (one billed copy per cdr_id,
-- month_events.sql; `rate` registers a pass of it as `cdrs`) with
--   * the subscription row of its msisdn whose [start_date, end_date]
--     contains the event's local date (none: NO_SUBSCRIPTION later), with
--     the key of the row's allowance pool, and
--   * the roaming zone of the visited network's MCC, the first 3 digits of
--     visited_mccmnc (an MCC not in roaming_zones.csv is ROAM_Z3).
SELECT
    c.cdr_id,
    c.msisdn,
    c.event_type,
    c.start_time,
    c.local_date,
    c.called_number,
    c.duration_s,
    c.volume_kb,
    c.units,
    c.wholesale_eur,
    c.source_file,
    s.customer_id,
    s.rate_grid,
    s.start_date AS subscription_start,
    s.pool_start,
    COALESCE(r.roaming_zone, 'ROAM_Z3') AS roaming_zone
FROM cdrs c
LEFT JOIN (
    -- The month's rows (those an event of the month can fall in), each
    -- with the key of its allowance pool (rating.md §4, pools.sql): the
    -- start_date of the line's first row with the same plan this month.
    SELECT
        msisdn,
        customer_id,
        rate_grid,
        start_date,
        end_date,
        MIN(start_date) OVER (PARTITION BY msisdn, plan_code) AS pool_start
    FROM month_subscriptions
) s
    ON s.msisdn = c.msisdn
   AND c.local_date >= s.start_date
   AND (s.end_date IS NULL OR c.local_date <= s.end_date)
LEFT JOIN roaming_zones r
    ON r.mcc = substr(c.visited_mccmnc, 1, 3)

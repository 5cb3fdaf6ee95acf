-- rating.md §6, the annex: each line's usage of the month per event type
-- and zone, billed quantity, the part its allowances covered, and the
-- amount (before the invoice's rounding to the cent per usage line).
SELECT
    customer_id,
    msisdn,
    event_type,
    zone,
    COUNT(*) AS events,
    SUM(billed_qty) AS billed_qty,
    SUM(covered_qty) AS covered_qty,
    SUM(amount) AS amount
FROM rated_cdrs
WHERE customer_id IS NOT NULL
GROUP BY customer_id, msisdn, event_type, zone
ORDER BY customer_id, msisdn, event_type, zone

-- rating.md §6, the annex: the events of each line that cost something
-- (outside its allowances), in time order, the first 50 of a line listed
-- (`listed_rank`) and how many there are (`charged_events`); the rest is
-- "on request". The called number is masked on its last 4 digits by
-- `render` before any template sees it.
WITH charged AS (
    SELECT
        r.customer_id,
        r.msisdn,
        r.start_time,
        r.event_type,
        r.zone,
        c.called_number,
        r.billed_qty,
        r.amount,
        ROW_NUMBER() OVER (
            PARTITION BY r.customer_id, r.msisdn ORDER BY r.start_time, r.cdr_id
        ) AS listed_rank,
        COUNT(*) OVER (PARTITION BY r.customer_id, r.msisdn) AS charged_events
    FROM rated_cdrs r
    JOIN cdrs c ON c.cdr_id = r.cdr_id
    WHERE r.amount > 0 AND r.customer_id IS NOT NULL
)
SELECT *
FROM charged
WHERE listed_rank <= 50
ORDER BY customer_id, msisdn, listed_rank

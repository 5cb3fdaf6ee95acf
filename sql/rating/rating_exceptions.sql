-- rating.md §1: an exception is never billed and never dropped. Output: the
-- `rating_exceptions` dataset, with each event's wholesale cost (revenue
-- leakage until the reference data is fixed and the month re-rated).
--
-- `excepted_events` holds the events rated_events.sql gave an exception
-- (`rate` sets them aside while it writes the rated ones).
SELECT
    cdr_id,
    msisdn,
    customer_id,
    event_type,
    start_time,
    local_date,
    exception AS reason,
    wholesale,
    source_file
FROM excepted_events
UNION ALL
-- A second copy of a cdr_id with other content (the first copy is billed).
SELECT
    cdr_id,
    msisdn,
    CAST(NULL AS VARCHAR) AS customer_id,
    event_type,
    start_time,
    local_date,
    'CONFLICTING_DUPLICATE' AS reason,
    wholesale_eur AS wholesale,
    source_file
FROM cdr_conflicts
ORDER BY reason, cdr_id

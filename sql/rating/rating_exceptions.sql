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
-- rating.md §1: a copy of a cdr_id with other content than the billed one
-- (billed_copies.sql: the copy from the file whose name sorts first) is a
-- CONFLICTING_DUPLICATE: the copies `land` kept that an earlier-sorting
-- file's copy replaces, and the conflicting copies but the billed one and
-- any with its very content (a copy with the same content counts once).
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
FROM superseded_copies
UNION ALL
SELECT
    k.cdr_id,
    k.msisdn,
    CAST(NULL AS VARCHAR) AS customer_id,
    k.event_type,
    k.start_time,
    k.local_date,
    'CONFLICTING_DUPLICATE' AS reason,
    k.wholesale_eur AS wholesale,
    k.source_file
FROM cdr_conflicts k
LEFT JOIN billed_copies b ON b.cdr_id = k.cdr_id
WHERE NOT COALESCE(b.from_conflicts AND b.content_hash = k.content_hash, FALSE)
ORDER BY reason, cdr_id

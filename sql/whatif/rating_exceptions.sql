-- docs/WHATIF.md: the events the alternative could not price (rating.md
-- §1: NO_SUBSCRIPTION, NO_DESTINATION, and NO_PRICE when its grid has no
-- row for the zone), as rating_exceptions.sql gives them, for margin.sql:
-- their wholesale still costs. A conflicting duplicate is never an event
-- of the month here (margin.sql leaves them out anyway).
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
FROM rated_events
WHERE exception IS NOT NULL

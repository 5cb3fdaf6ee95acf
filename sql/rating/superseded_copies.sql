-- rating.md §1: the month's copies in `cdrs` (the first landed) that are
-- not billed, because a conflicting copy from a file whose name sorts
-- first is (billed_copies.sql). Few: normally the files land in name order
-- and this is empty. rating_exceptions.sql lists them as
-- CONFLICTING_DUPLICATE.
SELECT
    c.cdr_id,
    c.msisdn,
    c.imsi,
    c.event_type,
    c.start_time,
    c.local_date,
    c.called_number,
    c.duration_s,
    c.volume_kb,
    c.units,
    c.visited_mccmnc,
    c.wholesale_eur,
    c.source_file,
    c.source_line,
    c.content_hash
FROM month_cdrs c
JOIN billed_copies b
    ON b.cdr_id = c.cdr_id
   AND b.from_conflicts

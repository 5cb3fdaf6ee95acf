-- rating.md §1: the month's conflicting copies (`cdr_conflicts`) that are
-- billed, being from the file whose name sorts first (billed_copies.sql),
-- with the columns of `cdrs`. Few: normally the files land in name order
-- and this is empty.
SELECT
    k.cdr_id,
    k.msisdn,
    k.imsi,
    k.event_type,
    k.start_time,
    k.local_date,
    k.called_number,
    k.duration_s,
    k.volume_kb,
    k.units,
    k.visited_mccmnc,
    k.wholesale_eur,
    k.source_file,
    k.source_line,
    k.content_hash
FROM cdr_conflicts k
JOIN billed_copies b
    ON b.cdr_id = k.cdr_id
   AND b.from_conflicts
   AND b.source_file = k.source_file
   AND b.source_line = k.source_line

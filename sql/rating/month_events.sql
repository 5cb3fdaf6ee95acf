-- rating.md §1: the month's events, one billed copy per cdr_id: the copies
-- `land` kept (`month_cdrs`, the first landed of each id) but those a copy
-- from an earlier-sorting file replaces (superseded_copies.sql), and those
-- replacing copies (billed_conflicts.sql). `rate` rates it in passes over
-- shares of its lines, each pass registered as `cdrs` for events.sql.
SELECT *
FROM month_cdrs c
WHERE NOT EXISTS (SELECT 1 FROM superseded_copies s WHERE s.cdr_id = c.cdr_id)
UNION ALL
SELECT *
FROM billed_conflicts

-- rating.md §8: the month's landed CDRs (first copy of each cdr_id) and the
-- CDRs of the MVNE's BilledCDRs statement, side by side by cdr_id, keeping
-- only the pairs that disagree: a side missing, or another wholesale
-- amount. One join serves the three comparisons that follow
-- (billed_not_landed, landed_not_billed, amount_mismatch).
--
-- "The month" on both sides is the Paris local date of the event (the
-- `month` partitions of `cdrs` and `billed_cdrs`), whichever monthly file
-- delivered it. Compared only once a BilledCDRs file named for the month
-- has landed (`billed_statement`): without it, every CDR would look
-- unbilled.
SELECT
    COALESCE(c.cdr_id, b.cdr_id) AS cdr_id,
    COALESCE(c.msisdn, b.msisdn) AS msisdn,
    COALESCE(c.event_type, b.event_type) AS event_type,
    COALESCE(c.start_time, b.start_time) AS start_time,
    c.cdr_id IS NOT NULL AS landed,
    b.cdr_id IS NOT NULL AS billed,
    c.wholesale_eur AS landed_wholesale,
    b.wholesale_eur AS billed_wholesale,
    c.source_file AS landed_file,
    b.source_file AS billed_file
FROM cdrs c
FULL OUTER JOIN billed_cdrs b ON b.cdr_id = c.cdr_id
WHERE EXISTS (SELECT 1 FROM billed_statement)
  AND (c.cdr_id IS NULL OR b.cdr_id IS NULL OR b.wholesale_eur <> c.wholesale_eur)

-- rating.md §1 and §8: the month's rating exceptions with their wholesale
-- cost: what the MVNE charges us for events we could not bill (revenue
-- leakage until the reference tables are fixed and the month re-rated,
-- before it is issued). One row per exception; the summary totals them per
-- reason. A CONFLICTING_DUPLICATE's amount is that of a copy not billed
-- (rating.md §1: the copy from the file whose name sorts first is billed,
-- and its wholesale counted with the rated CDRs).
SELECT
    'RATING_EXCEPTION' AS kind,
    e.reason,
    e.cdr_id,
    e.msisdn,
    e.customer_id,
    e.event_type,
    e.start_time,
    e.wholesale AS landed_wholesale,
    NULL AS billed_wholesale,
    e.wholesale AS amount,
    NULL AS cdrs,
    NULL AS terminated_on,
    NULL AS period_start,
    NULL AS period_end,
    NULL AS days,
    e.source_file
FROM rating_exceptions e

-- rating.md §1, for the incremental rule (changed_lines.sql): every line
-- of a copy of a cdr_id that a new conflicting copy came with
-- (`new_conflict_ids`): the month's copy in `cdrs`, and the copies of
-- every month (the billed one may carry another date).
SELECT c.msisdn
FROM month_cdrs c
WHERE c.cdr_id IN (SELECT cdr_id FROM new_conflict_ids)
UNION
SELECT k.msisdn
FROM all_cdr_conflicts k
WHERE k.cdr_id IN (SELECT cdr_id FROM new_conflict_ids)

-- The incremental rule (docs/RULES.md): the lines whose events are rated
-- again whole, from the month's start:
--   * a line whose subscription rows changed since the last run
--     (line_signatures.sql against `previous_lines`): a row added, ended,
--     another plan, grid, customer or option;
--   * a line with an event whose billed copy may have changed (rating.md
--     §1): every line of a copy of a cdr_id that a new conflicting copy
--     came with (conflict_lines.sql, run only when there is one).
SELECT COALESCE(n.msisdn, o.msisdn) AS msisdn
FROM line_signatures n
FULL OUTER JOIN previous_lines o ON o.msisdn = n.msisdn
WHERE n.signature IS DISTINCT FROM o.signature
UNION
SELECT msisdn FROM conflict_lines

-- The day each line became TERMINATED at the MVNE (rating.md §6.1): the
-- local date of the earliest status_since among the snapshots that report
-- the line TERMINATED. A snapshot without status_since dates the change by
-- its own local day (snapshot_date, Paris time).
SELECT
    msisdn,
    MIN(COALESCE(status_since_date, snapshot_date)) AS terminated_on
FROM account_status
WHERE status = 'TERMINATED'
GROUP BY msisdn

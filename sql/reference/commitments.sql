-- account.md §6: every commitment of every line, from all the rows of
-- subscriptions.csv. A row with commitment_months N > 0 starts a
-- commitment on its start_date unless one of the same line is running that
-- day (start to end, both included), which it then continues (a plan
-- change, an option); a row with N = 0 ends nothing. A commitment ends the
-- day before the same day N months after its start (commitment_end); "the
-- same day" is the month's last day when that month is shorter (the
-- engine's month arithmetic clamps: 2026-01-31 + 1 month = 2026-02-28), so
-- a 12-month commitment from 2026-01-31 ends on 2027-01-30, one from
-- 2024-02-29 on 2025-02-27.
--
-- Which row starts a commitment depends on where the one before ended: a
-- chain, followed row to row (WITH RECURSIVE) from the line's first
-- committing row, each commitment leading to the first committing row that
-- starts after its end.
--
-- `ended_on` is the day the line ended within the commitment (before its
-- end): the earlier of the day it became TERMINATED at the MVNE
-- (terminations) and the end_date of its last row (there is no following
-- row); NULL when the line ran to the commitment's end or runs on.
WITH RECURSIVE committing AS (
    SELECT
        msisdn,
        customer_id,
        start_date,
        commitment_months,
        CAST(
            start_date + CAST(concat(CAST(commitment_months AS VARCHAR), ' months') AS INTERVAL)
            - INTERVAL '1 day'
            AS DATE
        ) AS row_end
    FROM subscriptions
    WHERE commitment_months > 0
),
links AS (
    SELECT
        c.msisdn,
        c.customer_id,
        c.start_date,
        c.commitment_months,
        c.row_end,
        MIN(n.start_date) AS next_start
    FROM committing c
    LEFT JOIN committing n ON n.msisdn = c.msisdn AND n.start_date > c.row_end
    GROUP BY c.msisdn, c.customer_id, c.start_date, c.commitment_months, c.row_end
),
firsts AS (
    SELECT msisdn, MIN(start_date) AS start_date FROM committing GROUP BY msisdn
),
chain AS (
    SELECT l.msisdn, l.customer_id, l.start_date, l.commitment_months, l.row_end, l.next_start
    FROM links l
    JOIN firsts f ON f.msisdn = l.msisdn AND f.start_date = l.start_date
    UNION ALL
    SELECT l.msisdn, l.customer_id, l.start_date, l.commitment_months, l.row_end, l.next_start
    FROM chain c
    JOIN links l ON l.msisdn = c.msisdn AND l.start_date = c.next_start
),
last_rows AS (
    SELECT msisdn, end_date AS last_end
    FROM (
        SELECT
            msisdn,
            end_date,
            ROW_NUMBER() OVER (PARTITION BY msisdn ORDER BY start_date DESC) AS rank
        FROM subscriptions
    ) r
    WHERE rank = 1
),
line_ends AS (
    SELECT
        r.msisdn,
        CASE
            WHEN t.terminated_on IS NULL THEN r.last_end
            WHEN r.last_end IS NULL OR t.terminated_on < r.last_end THEN t.terminated_on
            ELSE r.last_end
        END AS ended_on
    FROM last_rows r
    LEFT JOIN terminations t ON t.msisdn = r.msisdn
)
SELECT
    c.msisdn,
    c.customer_id,
    c.start_date AS commitment_start,
    c.commitment_months,
    c.row_end AS commitment_end,
    CASE
        WHEN e.ended_on >= c.start_date AND e.ended_on < c.row_end THEN e.ended_on
    END AS ended_on
FROM chain c
LEFT JOIN line_ends e ON e.msisdn = c.msisdn

-- rating.md §2: the zone of a called number is that of its LONGEST matching
-- prefix in destinations.csv.
--
-- Done as an equi-join, not a scan of every prefix for every number: each
-- distinct called number (longer than 6 digits; shorter ones are FR_SHORT
-- without a look-up) is cut at each prefix length that destinations.csv
-- uses (a handful), those candidates are joined on equality with the
-- prefixes, and the longest match wins.
WITH numbers AS (
    SELECT DISTINCT called_number
    FROM events
    WHERE called_number IS NOT NULL AND length(called_number) > 6
),
prefix_lengths AS (
    SELECT DISTINCT length(prefix) AS prefix_length FROM destinations
),
candidates AS (
    SELECT n.called_number, left(n.called_number, l.prefix_length) AS prefix
    FROM numbers n
    CROSS JOIN prefix_lengths l
    WHERE l.prefix_length <= length(n.called_number)
),
matches AS (
    SELECT
        c.called_number,
        d.zone,
        ROW_NUMBER() OVER (PARTITION BY c.called_number ORDER BY length(d.prefix) DESC) AS rank
    FROM candidates c
    JOIN destinations d ON d.prefix = c.prefix
)
SELECT called_number, zone
FROM matches
WHERE rank = 1

-- docs/WHATIF.md: the price rows under one alternative. A benchmark offer
-- prices the usage its allowances cover (the allowance groups of plans,
-- rating.md §2): VOICE to FR_MOBILE and FR_FIXED, SMS and MMS to
-- FR_MOBILE, DATA in HOME (which includes the EU, roam like at home). For
-- those five (zone, event type) pairs its row replaces every version of
-- every grid 1 to 5, from a date before any event; every other row (calls
-- abroad, DOM, short numbers, roaming) stays that of the line's own grid.
-- Voice is priced per minute (price x seconds / 60, plus the connect fee),
-- data per MB (price x KB / 1024), messages per unit, as in rate_grids.csv.
-- Without an offer the rows are those of rate_grids.csv.
WITH offered AS (
    SELECT offer, 'FR_MOBILE' AS zone, 'VOICE' AS event_type, voice_price AS price,
           voice_connect_fee AS connect_fee, voice_first_increment AS first_increment,
           voice_next_increment AS next_increment
    FROM benchmark
    UNION ALL
    SELECT offer, 'FR_FIXED', 'VOICE', voice_price, voice_connect_fee,
           voice_first_increment, voice_next_increment
    FROM benchmark
    UNION ALL
    SELECT offer, 'FR_MOBILE', 'SMS', sms_price, NULL, NULL, NULL
    FROM benchmark
    UNION ALL
    SELECT offer, 'FR_MOBILE', 'MMS', mms_price, NULL, NULL, NULL
    FROM benchmark
    UNION ALL
    SELECT offer, 'HOME', 'DATA', data_price_mb, NULL, data_first_increment,
           data_next_increment
    FROM benchmark
),
replaced AS (
    SELECT o.*
    FROM offered o
    JOIN scenario w ON w.offer = o.offer
)
SELECT
    g.grid,
    g.zone,
    g.event_type,
    g.price,
    g.connect_fee,
    g.first_increment,
    g.next_increment,
    g.valid_from
FROM reference_rate_grids g
LEFT JOIN replaced r ON r.zone = g.zone AND r.event_type = g.event_type
WHERE r.offer IS NULL
UNION ALL
SELECT
    grids.grid,
    r.zone,
    r.event_type,
    r.price,
    r.connect_fee,
    r.first_increment,
    r.next_increment,
    DATE '1970-01-01' AS valid_from
FROM replaced r
CROSS JOIN (VALUES (1), (2), (3), (4), (5)) AS grids (grid)

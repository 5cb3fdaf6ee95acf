-- rate_grids.csv is versioned (formats.md): a price row applies to events
-- from its valid_from date until the next row of the same grid, zone and
-- event type (rating.md §2, "latest valid_from on or before the event date").
SELECT
    grid,
    zone,
    event_type,
    price,
    COALESCE(connect_fee, 0) AS connect_fee,
    first_increment,
    next_increment,
    valid_from,
    LEAD(valid_from) OVER (PARTITION BY grid, zone, event_type ORDER BY valid_from) AS valid_to
FROM rate_grids

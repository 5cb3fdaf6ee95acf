-- rating.md §2 and §3: context, rating zone, allowance group, price row,
-- exception reason and billed quantity of every event.
--
-- Domestic context (roaming zone HOME or EU, "roam like at home"):
--   VOICE, SMS, MMS are rated in the zone of the called number: FR_SHORT for
--   6 digits or fewer, else the zone of its longest prefix in
--   destinations.csv (no matching prefix: NO_DESTINATION); DATA in HOME;
--   VOICE_IN and SMS_IN are free (quantity counted, amount 0; this project
--   records them in zone HOME with their raw quantity, no increments).
-- Roaming context (ROAM_Z1..3): every event type, incoming included, is
--   rated in the roaming zone, and no allowance applies.
--
-- Exceptions, first match wins: NO_SUBSCRIPTION, NO_DESTINATION, NO_PRICE
-- (no row of the line's grid for the zone and event type with a valid_from
-- on or before the event date). CONFLICTING_DUPLICATE is not an event of
-- the month (month_events.sql); rating_exceptions.sql lists those copies.
--
-- Billed quantity (§3), of the raw quantity d (duration_s for voice,
-- volume_kb for data, units for messages), f = first_increment,
-- n = next_increment: 0 if d = 0; f if 0 < d <= f; f + ceil((d - f) / n) * n
-- otherwise (ceil as an integer division rounded up); messages: units.
WITH zoned AS (
    SELECT
        e.*,
        e.roaming_zone IN ('HOME', 'EU') AS domestic,
        CASE
            WHEN e.roaming_zone NOT IN ('HOME', 'EU') THEN e.roaming_zone
            WHEN e.event_type IN ('DATA', 'VOICE_IN', 'SMS_IN') THEN 'HOME'
            WHEN length(e.called_number) <= 6 THEN 'FR_SHORT'
            -- The zone of the longest prefix in destinations.csv (NULL when
            -- none matches): a hash look-up per prefix length, in Rust, see
            -- pipeline/engine/zones.rs for why and its tests.
            ELSE longest_prefix_zone(e.called_number)
        END AS zone
    FROM events e
),
grouped AS (
    SELECT
        *,
        domestic AND event_type IN ('VOICE_IN', 'SMS_IN') AS free,
        CASE
            WHEN event_type IN ('VOICE', 'VOICE_IN') THEN duration_s
            WHEN event_type = 'DATA' THEN volume_kb
            ELSE units
        END AS raw_qty,
        CASE
            WHEN NOT domestic THEN NULL
            WHEN event_type = 'VOICE' AND zone IN ('FR_MOBILE', 'FR_FIXED') THEN 'VOICE_FR'
            WHEN event_type = 'VOICE' AND zone = 'DOM' THEN 'VOICE_DOM'
            WHEN event_type = 'VOICE' AND zone = 'EU' THEN 'VOICE_EU'
            WHEN event_type = 'SMS' AND zone = 'FR_MOBILE' THEN 'SMS_FR'
            WHEN event_type = 'SMS' AND zone = 'EU' THEN 'SMS_EU'
            WHEN event_type = 'MMS' AND zone = 'FR_MOBILE' THEN 'MMS_FR'
            WHEN event_type = 'DATA' THEN 'DATA_FR'
        END AS allowance_group
    FROM zoned
)
SELECT
    g.*,
    v.price,
    v.connect_fee,
    CASE
        WHEN g.customer_id IS NULL THEN 'NO_SUBSCRIPTION'
        WHEN g.zone IS NULL THEN 'NO_DESTINATION'
        WHEN NOT g.free AND v.price IS NULL THEN 'NO_PRICE'
    END AS exception,
    CASE
        WHEN g.free OR g.event_type IN ('SMS', 'SMS_IN', 'MMS') THEN g.raw_qty
        WHEN g.raw_qty = 0 THEN 0
        WHEN g.raw_qty <= v.first_increment THEN v.first_increment
        ELSE v.first_increment
            + ((g.raw_qty - v.first_increment + v.next_increment - 1) / v.next_increment)
            * v.next_increment
    END AS billed_qty
FROM grouped g
LEFT JOIN grid_versions v
    ON v.grid = g.rate_grid
   AND v.zone = g.zone
   AND v.event_type = g.event_type
   AND v.valid_from <= g.local_date
   AND (v.valid_to IS NULL OR g.local_date < v.valid_to)

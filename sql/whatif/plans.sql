-- docs/WHATIF.md: the plans' allowances under one alternative. A benchmark
-- offer (`scenario.offer`) replaces every plan's allowances with its own
-- (benchmark.csv, in the units of plans.csv: minutes, messages, MB; empty =
-- unlimited, 0 = none), so pools.sql builds each line's pools from the
-- offer (rating.md §4). Otherwise the plans are those of plans.csv.
SELECT
    p.plan_code,
    p.label,
    CASE WHEN w.offer IS NULL THEN p.voice_fr_min ELSE b.voice_fr_min END AS voice_fr_min,
    CASE WHEN w.offer IS NULL THEN p.sms_fr ELSE b.sms_fr END AS sms_fr,
    CASE WHEN w.offer IS NULL THEN p.mms_fr ELSE b.mms_fr END AS mms_fr,
    CASE WHEN w.offer IS NULL THEN p.data_fr_mb ELSE b.data_fr_mb END AS data_fr_mb
FROM reference_plans p
CROSS JOIN scenario w
LEFT JOIN benchmark b ON b.offer = w.offer

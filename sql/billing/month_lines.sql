-- rating.md §6: every line the month itself brings to its invoices, before
-- numbering, each with
--   * `line_key`: what identifies the line across re-billings of the month
--     (account.md §4): the kind, the line and the subscription row, option,
--     usage event type and zone, or handset sale it bills;
--   * `period`: the month it bills (a REGULARISATION line keeps the month it
--     corrects, see regularisation_lines.sql);
--   * its VAT category and rate.
SELECT
    l.*,
    p.month AS period,
    'S' AS vat_category,
    CAST(20.00 AS DECIMAL(5, 2)) AS vat_rate
FROM (
    SELECT * FROM subscription_lines
    UNION ALL
    SELECT * FROM option_lines
    UNION ALL
    SELECT * FROM usage_lines
    UNION ALL
    SELECT * FROM equipment_lines
) l
CROSS JOIN params p

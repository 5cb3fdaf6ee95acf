-- docs/WHATIF.md: what the alternative would have invoiced, as
-- draft_lines.sql drafts it (rating.md §6.1 to §6.3): subscription, option
-- and usage lines, with the fees, options and rated events of the
-- alternative. No number (nothing is issued) and no equipment line (a
-- handset is sold at the same price whatever the tariff). Registered as
-- `invoice_lines` for margin.sql.
SELECT
    CAST(NULL AS VARCHAR) AS invoice_number,
    l.customer_id,
    l.kind,
    l.msisdn,
    l.label,
    l.code,
    l.event_type,
    l.zone,
    l.quantity,
    l.unit_price,
    l.amount_ht,
    l.period_start,
    l.period_end
FROM (
    SELECT * FROM subscription_lines
    UNION ALL
    SELECT * FROM option_lines
    UNION ALL
    SELECT * FROM usage_lines
) l

-- account.md §4: for each issued month billed again (`regularised_months`),
-- customer and line key, delta = amount now - amount already invoiced.
--   * now: `recomputed_lines`, the month's lines billed again in memory from
--     everything the lake and the reference tables hold (charges excluded:
--     they are never regularised);
--   * already invoiced: the month's own invoice lines, plus every
--     REGULARISATION line of the month issued since, minus every line of a
--     regularisation credit note of the month. Only issued months count
--     (partitions before the month being billed: a partition of the month
--     itself is what a run that stopped before the ledger left behind).
-- Quantities likewise. The label is the one billed now (the one invoiced
-- for a line that is gone); the VAT category, rate and exemption text are
-- those of the line invoiced (rating.md §6: a regularisation keeps the
-- category and rate of the line it corrects; the one billed now for a new
-- line).
WITH invoiced AS (
    SELECT
        l.customer_id,
        CASE WHEN l.kind = 'REGULARISATION' THEN l.period ELSE l.month END AS period,
        l.line_key, l.msisdn, l.label, l.code, l.event_type, l.zone,
        l.quantity, l.amount_ht, l.period_start, l.period_end, l.vat_category, l.vat_rate,
        l.vat_exemption
    FROM invoiced_lines l
    CROSS JOIN params p
    WHERE l.month < p.month AND l.kind <> 'CHARGE'
    UNION ALL
    SELECT
        c.customer_id, c.period, c.line_key, c.msisdn, c.label, c.code, c.event_type, c.zone,
        -c.quantity, -c.amount_ht, c.period_start, c.period_end, c.vat_category, c.vat_rate,
        c.vat_exemption
    FROM credited_lines c
    CROSS JOIN params p
    WHERE c.month < p.month
),
sides AS (
    SELECT
        customer_id, period, line_key, kind, msisdn, label, code, event_type, zone,
        quantity, amount_ht, period_start, period_end, vat_category, vat_rate,
        vat_exemption, 1 AS now
    FROM recomputed_lines
    UNION ALL
    SELECT
        customer_id, period, line_key, split_part(line_key, '|', 1) AS kind, msisdn, label,
        code, event_type, zone, -quantity, -amount_ht, period_start, period_end,
        vat_category, vat_rate, vat_exemption, 0 AS now
    FROM invoiced
    WHERE period IN (SELECT period FROM regularised_months)
)
SELECT
    customer_id,
    MAX(kind) AS kind,
    MAX(msisdn) AS msisdn,
    COALESCE(MAX(CASE WHEN now = 1 THEN label END), MAX(label)) AS label,
    MAX(code) AS code,
    MAX(event_type) AS event_type,
    MAX(zone) AS zone,
    CAST(SUM(quantity) AS BIGINT) AS quantity,
    CAST(NULL AS DECIMAL(18, 6)) AS unit_price,
    CAST(SUM(amount_ht) AS DECIMAL(18, 2)) AS amount_ht,
    MIN(period_start) AS period_start,
    MAX(period_end) AS period_end,
    line_key,
    period,
    COALESCE(MAX(CASE WHEN now = 0 THEN vat_category END), MAX(vat_category)) AS vat_category,
    COALESCE(MAX(CASE WHEN now = 0 THEN vat_rate END), MAX(vat_rate)) AS vat_rate,
    -- NULL for an S line: the invoiced side's, NULL or not, when there is one.
    CASE
        WHEN MIN(now) = 0 THEN MAX(CASE WHEN now = 0 THEN vat_exemption END)
        ELSE MAX(vat_exemption)
    END AS vat_exemption
FROM sides
GROUP BY customer_id, period, line_key
HAVING SUM(amount_ht) <> 0

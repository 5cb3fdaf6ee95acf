-- account.md §6: a line that ends on day d before its commitment_end
-- (commitments.ended_on) is charged, on the invoice of the month holding d,
-- one TERMINATION_FEE line:
--   * F, the monthly_fee of plan_fees.csv in force on d for the line's row
--     holding d (its last row), options excluded;
--   * t, the commitment month holding d: the commitment's months are
--     anniversary months, month i from start + (i-1) months to the day
--     before start + i months, so t - 1 is the number of whole months from
--     the start to d (k0, the calendar months between them, less one when
--     start + k0 months falls after d);
--   * the months t+1 .. N left: m1 those numbered 12 or less, m2 the others;
--   * B2C: round(F x m1 + F x m2 / 4, 2) (Code de la consommation L224-28);
--     B2B: round(F x (m1 + m2), 2).
-- Quantity: the months left (N - t); unit price F; period d to the
-- commitment's end. No line when the fee is 0.00; a missing F leaves the
-- amount NULL, and `bill` refuses the month and names the line. The fee
-- takes the VAT code of the plan fee row F comes from (docs/RULES.md §6: it
-- is the price of the subscription left unserved).
WITH ended AS (
    SELECT
        c.*,
        (CAST(date_part('year', c.ended_on) AS BIGINT)
            - CAST(date_part('year', c.commitment_start) AS BIGINT)) * 12
        + CAST(date_part('month', c.ended_on) AS BIGINT)
        - CAST(date_part('month', c.commitment_start) AS BIGINT) AS k0
    FROM commitments c
    CROSS JOIN params p
    WHERE c.ended_on >= p.month_start AND c.ended_on <= p.month_end
),
elapsed AS (
    SELECT
        e.*,
        CASE
            WHEN e.commitment_start + CAST(concat(CAST(e.k0 AS VARCHAR), ' months') AS INTERVAL) > e.ended_on
                THEN e.k0
            ELSE e.k0 + 1
        END AS t
    FROM ended e
),
left_months AS (
    SELECT
        e.*,
        CASE
            WHEN e.commitment_months < 12 THEN e.commitment_months
            ELSE 12
        END - e.t AS first_year_left,
        e.commitment_months - CASE WHEN e.t > 12 THEN e.t ELSE 12 END AS later_left
    FROM elapsed e
),
split AS (
    SELECT
        l.*,
        CASE WHEN l.first_year_left > 0 THEN l.first_year_left ELSE 0 END AS m1,
        CASE WHEN l.later_left > 0 THEN l.later_left ELSE 0 END AS m2
    FROM left_months l
),
last_row AS (
    SELECT
        s.*,
        ROW_NUMBER() OVER (PARTITION BY s.msisdn, s.commitment_start ORDER BY r.start_date DESC) AS rank,
        r.customer_id AS row_customer_id,
        r.plan_code,
        r.with_handset,
        r.commitment_months AS row_commitment_months
    FROM split s
    JOIN subscriptions r ON r.msisdn = s.msisdn AND r.start_date <= s.ended_on
),
fees AS (
    SELECT
        l.row_customer_id AS customer_id,
        l.msisdn,
        l.plan_code,
        l.commitment_start,
        l.commitment_end,
        l.ended_on,
        l.m1,
        l.m2,
        k.kind AS customer_kind,
        f.monthly_fee,
        f.vat_code,
        f.vat_exemption,
        CAST(
            CASE
                WHEN k.kind = 'B2B' THEN f.monthly_fee * (l.m1 + l.m2)
                ELSE f.monthly_fee * l.m1 + f.monthly_fee * l.m2 / 4
            END
            AS DECIMAL(18, 2)
        ) AS fee
    FROM last_row l
    JOIN customers k ON k.customer_id = l.row_customer_id
    LEFT JOIN plan_fee_versions f
        ON f.plan_code = l.plan_code
       AND f.commitment_months = l.row_commitment_months
       AND f.with_handset = l.with_handset
       AND f.valid_from <= l.ended_on
       AND (f.valid_to IS NULL OR l.ended_on < f.valid_to)
    WHERE l.rank = 1
)
SELECT
    customer_id,
    'TERMINATION_FEE' AS kind,
    msisdn,
    concat(
        'Frais de résiliation anticipée (engagement jusqu''au ',
        to_char(commitment_end, '%d/%m/%Y'),
        ')'
    ) AS label,
    plan_code AS code,
    CAST(NULL AS VARCHAR) AS event_type,
    CAST(NULL AS VARCHAR) AS zone,
    CAST(m1 + m2 AS BIGINT) AS quantity,
    monthly_fee AS unit_price,
    fee AS amount_ht,
    ended_on AS period_start,
    commitment_end AS period_end,
    concat('TERMINATION_FEE|', msisdn, '|', CAST(commitment_start AS VARCHAR)) AS line_key,
    vat_code AS product_vat_code,
    vat_exemption AS product_vat_exemption
FROM fees
WHERE fee IS NULL OR fee <> 0

-- docs/WHATIF.md: an alternative issues no invoice: margin.sql's invoice
-- numbers stay empty.
SELECT
    CAST(NULL AS VARCHAR) AS invoice_number,
    customer_id
FROM customers
WHERE false

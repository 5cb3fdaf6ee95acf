-- `mvnobill doctor`, check "invoice lines" (docs/OPERATIONS.md): each
-- invoice of every month with what its lines add up to, for the check that
-- the lines add up to its total HT and HT + VAT = TTC, and that it has
-- lines at all (`lines` = 0). Amounts as text, exactly.
SELECT
    i.invoice_number,
    CAST(i.total_ht AS VARCHAR) AS total_ht,
    CAST(i.vat AS VARCHAR) AS vat,
    CAST(i.total_ttc AS VARCHAR) AS total_ttc,
    CAST(l.lines_ht AS VARCHAR) AS lines_ht,
    COALESCE(l.lines, 0) AS lines
FROM invoices i
LEFT JOIN (
    SELECT month, invoice_number, SUM(amount_ht) AS lines_ht, COUNT(*) AS lines
    FROM invoice_lines
    GROUP BY month, invoice_number
) l
    ON l.month = i.month AND l.invoice_number = i.invoice_number
ORDER BY i.invoice_number

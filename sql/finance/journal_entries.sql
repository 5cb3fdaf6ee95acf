-- The rows of `sales_journal` the accountant's CSV journal is written from
-- (`finance`, docs/ACCOUNTING.md), in the journal's order: by document
-- number, type and VAT rate, so that a re-run writes the same bytes. Each
-- row gives the CSV's lines in double entry.
SELECT
    document_type,
    document_number,
    journal_code,
    CAST(entry_date AS VARCHAR) AS entry_date,
    customer_id,
    customer_name,
    customer_account,
    services_account,
    equipment_account,
    vat_account,
    vat_rate,
    services_ht,
    equipment_ht,
    vat,
    total_ttc
FROM sales_journal
ORDER BY document_number, document_type, vat_rate

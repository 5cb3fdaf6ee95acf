-- The `sales_journal` dataset (docs/ACCOUNTING.md): one row per document
-- and VAT rate, what the accountant books. An invoice is debited to the
-- customer account (total TTC) and credited to the services account
-- (everything but handsets: subscriptions, options, usage, one-off charges,
-- termination fees, regularisations HT), the equipment account (handsets HT)
-- and the VAT collected account (VAT). Accounts and journal come from
-- `[accounting]` (table accounting).
--
-- Every invoice has the one VAT rate of rating.md §6 (20 %, draft_invoices.sql),
-- so it gives one row. Signs: an INVOICE's amounts are positive; a
-- CREDIT_NOTE adds its row with negative amounts, so that a SUM over the
-- journal is the net sales; `invoice_number` is then the invoice it corrects
-- and `document_number` its own number. The credit notes are those dated in
-- the month the invoices were issued in (table credit_notes). A note that
-- credits the whole invoice splits between services and equipment as the
-- invoice did; a partial one corrects services.
--
-- The customer's name is that of customers.csv; the kind (B2C, B2B) is the
-- one the invoice was issued with.
SELECT
    'INVOICE' AS document_type,
    i.invoice_number AS document_number,
    i.invoice_number,
    a.journal_code,
    i.issue_date AS entry_date,
    i.customer_id,
    COALESCE(c.name, '') AS customer_name,
    i.customer_kind,
    a.customer_account,
    a.services_account,
    a.equipment_account,
    a.vat_account,
    CAST(20.00 AS DECIMAL(5, 2)) AS vat_rate,
    CAST(i.total_ht - i.equipment_ht AS DECIMAL(18, 2)) AS services_ht,
    i.equipment_ht,
    i.total_ht,
    i.vat,
    i.total_ttc
FROM invoices i
CROSS JOIN accounting a
LEFT JOIN customers c ON c.customer_id = i.customer_id
UNION ALL
SELECT
    'CREDIT_NOTE' AS document_type,
    n.credit_note_number AS document_number,
    n.invoice_number,
    a.journal_code,
    n.issue_date AS entry_date,
    n.customer_id,
    COALESCE(c.name, '') AS customer_name,
    n.customer_kind,
    a.customer_account,
    a.services_account,
    a.equipment_account,
    a.vat_account,
    n.vat_rate,
    CAST(-(CASE WHEN n.total_ht = i.total_ht
                THEN i.total_ht - i.equipment_ht
                ELSE n.total_ht END) AS DECIMAL(18, 2)) AS services_ht,
    CAST(-(CASE WHEN n.total_ht = i.total_ht THEN i.equipment_ht
                ELSE CAST(0 AS DECIMAL(18, 2)) END) AS DECIMAL(18, 2)) AS equipment_ht,
    CAST(-n.total_ht AS DECIMAL(18, 2)) AS total_ht,
    CAST(-n.vat AS DECIMAL(18, 2)) AS vat,
    CAST(-n.total_ttc AS DECIMAL(18, 2)) AS total_ttc
FROM credit_notes n
CROSS JOIN accounting a
LEFT JOIN customers c ON c.customer_id = n.customer_id
LEFT JOIN all_invoices i ON i.invoice_number = n.invoice_number
ORDER BY document_number, document_type, vat_rate

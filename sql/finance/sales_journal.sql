-- The `sales_journal` dataset (docs/ACCOUNTING.md): one row per document
-- and VAT rate, what the accountant books. An invoice is debited to the
-- customer account (total TTC) and credited to the services account
-- (subscriptions, options, usage HT), the equipment account (handsets HT)
-- and the VAT collected account (VAT). Accounts and journal come from
-- `[accounting]` (table accounting).
--
-- Every invoice has the one VAT rate of rating.md §6 (20 %, draft_invoices.sql),
-- so it gives one row. Signs: an INVOICE's amounts are positive; a
-- CREDIT_NOTE (credit notes, to come) adds its rows with negative amounts, so
-- that a SUM over the journal is the net sales; `invoice_number` is then the
-- invoice it corrects and `document_number` its own number.
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
    CAST(i.subscription_ht + i.options_ht + i.usage_ht AS DECIMAL(18, 2)) AS services_ht,
    i.equipment_ht,
    i.total_ht,
    i.vat,
    i.total_ttc
FROM invoices i
CROSS JOIN accounting a
LEFT JOIN customers c ON c.customer_id = i.customer_id
ORDER BY document_number, document_type, vat_rate

-- The `sales_journal` dataset (docs/ACCOUNTING.md): one row per document
-- and VAT rate, what the accountant books. An invoice is debited to the
-- customer account (total TTC) and credited to the services account
-- (everything but handsets: subscriptions, options, usage, one-off charges,
-- termination fees, regularisations HT), the equipment account (handsets HT)
-- and the VAT collected account of the rate (VAT). Accounts and journal come
-- from `[accounting]` (table accounting; table vat_accounts, the account of
-- each rate that has its own, else `vat_account`).
--
-- rating.md §6, "VAT by product and place": an invoice's lines are grouped
-- by VAT rate (invoice_lines), each rate's VAT computed per category as
-- draft_invoices.sql computes it, so the rows of an invoice add up to its
-- totals; a rate of 0 % (E, AE, K, G, O) has no VAT and so no VAT line in the
-- CSV. Each row balances: total_ttc = services_ht + equipment_ht + vat.
--
-- Signs: an INVOICE's amounts are positive; a CREDIT_NOTE adds its rows
-- with negative amounts, so that a SUM over the journal is the net sales;
-- `invoice_number` is then the invoice it corrects and `document_number`
-- its own number. The credit notes are those dated in the month the
-- invoices were issued in (table credit_notes), each with its VAT per
-- category and rate (table credit_note_vat: the handsets it credits go to
-- the equipment account, docs/CREDIT_NOTES.md). A note recorded before
-- credit_note_vat existed has no part there: its one rate, split between
-- services and equipment as its invoice when it credits it whole, services
-- otherwise.
--
-- The customer's name is that of customers.csv; the kind (B2C, B2B) is the
-- one the invoice was issued with.
WITH invoice_groups AS (
    SELECT
        invoice_number,
        vat_rate,
        SUM(CASE WHEN kind = 'EQUIPMENT' THEN 0 ELSE amount_ht END) AS services_ht,
        SUM(CASE WHEN kind = 'EQUIPMENT' THEN amount_ht ELSE 0 END) AS equipment_ht,
        SUM(amount_ht) AS total_ht,
        CAST(SUM(amount_ht) * vat_rate * 0.01 AS DECIMAL(18, 2)) AS vat
    FROM invoice_lines
    GROUP BY invoice_number, vat_category, vat_rate
),
invoice_rates AS (
    SELECT
        invoice_number,
        vat_rate,
        CAST(SUM(services_ht) AS DECIMAL(18, 2)) AS services_ht,
        CAST(SUM(equipment_ht) AS DECIMAL(18, 2)) AS equipment_ht,
        CAST(SUM(total_ht) AS DECIMAL(18, 2)) AS total_ht,
        CAST(SUM(vat) AS DECIMAL(18, 2)) AS vat
    FROM invoice_groups
    GROUP BY invoice_number, vat_rate
),
note_rates AS (
    SELECT
        credit_note_number,
        vat_rate,
        CAST(SUM(base_ht - equipment_ht) AS DECIMAL(18, 2)) AS services_ht,
        CAST(SUM(equipment_ht) AS DECIMAL(18, 2)) AS equipment_ht,
        CAST(SUM(base_ht) AS DECIMAL(18, 2)) AS total_ht,
        CAST(SUM(vat) AS DECIMAL(18, 2)) AS vat
    FROM credit_note_vat
    GROUP BY credit_note_number, vat_rate
    UNION ALL
    SELECT
        n.credit_note_number,
        n.vat_rate,
        CAST(CASE WHEN n.total_ht = i.total_ht THEN i.total_ht - i.equipment_ht
                  ELSE n.total_ht END AS DECIMAL(18, 2)) AS services_ht,
        CAST(CASE WHEN n.total_ht = i.total_ht THEN i.equipment_ht
                  ELSE CAST(0 AS DECIMAL(18, 2)) END AS DECIMAL(18, 2)) AS equipment_ht,
        n.total_ht,
        n.vat
    FROM credit_notes n
    LEFT JOIN all_invoices i ON i.invoice_number = n.invoice_number
    WHERE n.credit_note_number NOT IN (SELECT credit_note_number FROM credit_note_vat)
)
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
    COALESCE(v.account, a.vat_account) AS vat_account,
    CAST(r.vat_rate AS DECIMAL(5, 2)) AS vat_rate,
    r.services_ht,
    r.equipment_ht,
    r.total_ht,
    r.vat,
    CAST(r.total_ht + r.vat AS DECIMAL(18, 2)) AS total_ttc
FROM invoices i
JOIN invoice_rates r ON r.invoice_number = i.invoice_number
CROSS JOIN accounting a
LEFT JOIN vat_accounts v ON v.vat_rate = r.vat_rate
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
    COALESCE(v.account, a.vat_account) AS vat_account,
    CAST(r.vat_rate AS DECIMAL(5, 2)) AS vat_rate,
    CAST(-r.services_ht AS DECIMAL(18, 2)) AS services_ht,
    CAST(-r.equipment_ht AS DECIMAL(18, 2)) AS equipment_ht,
    CAST(-r.total_ht AS DECIMAL(18, 2)) AS total_ht,
    CAST(-r.vat AS DECIMAL(18, 2)) AS vat,
    CAST(-(r.total_ht + r.vat) AS DECIMAL(18, 2)) AS total_ttc
FROM credit_notes n
JOIN note_rates r ON r.credit_note_number = n.credit_note_number
CROSS JOIN accounting a
LEFT JOIN vat_accounts v ON v.vat_rate = r.vat_rate
LEFT JOIN customers c ON c.customer_id = n.customer_id
ORDER BY document_number, document_type, vat_rate

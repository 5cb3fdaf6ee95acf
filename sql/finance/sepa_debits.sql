-- The month's invoices paid by SEPA direct debit (payment_method SEPA_DD on
-- the invoice, as the customer was told), with the mandate of their customer
-- as customers.csv holds it now: the debtor's name, IBAN, BIC, mandate
-- reference (RUM) and signature date. `invoices` is the month's partition.
-- A LEFT JOIN: an invoice whose customer lost its row or its mandate is
-- reported by `sepa`, never dropped. Amounts below or at zero are kept
-- here and set aside by `sepa` (they are not collected). `amount_due`
-- (account.md §7): the invoice's total plus the balance brought forward,
-- what the debit asks for.
SELECT
    i.invoice_number,
    i.customer_id,
    i.issue_date,
    i.due_date,
    i.total_ttc,
    i.amount_due,
    c.name,
    c.iban,
    c.bic,
    c.mandate_rum,
    c.mandate_date
FROM invoices i
LEFT JOIN customers c ON c.customer_id = i.customer_id
WHERE i.payment_method = 'SEPA_DD'
ORDER BY i.invoice_number

-- rating.md §6: what an invoice document shows of the invoice and its
-- customer (customers.csv: billing address, business identifiers, payment
-- details). `invoices` is the month's partition of the dataset.
SELECT
    i.invoice_number,
    i.customer_id,
    i.issue_date,
    i.due_date,
    i.period_start,
    i.period_end,
    i.payment_method,
    i.subscription_ht,
    i.options_ht,
    i.usage_ht,
    i.equipment_ht,
    i.total_ht,
    i.vat,
    i.total_ttc,
    c.kind,
    c.name,
    c.address1,
    c.address2,
    c.postcode,
    c.city,
    c.country,
    c.email,
    c.vat_number,
    c.siret,
    c.iban,
    c.mandate_rum,
    c.mandate_date
FROM invoices i
JOIN customers c ON c.customer_id = i.customer_id
ORDER BY i.invoice_number

-- rating.md §6, account.md §3: what an invoice document shows of the
-- invoice and its customer. `invoices` is the month's partition of the
-- dataset (or the draft's `draft_invoices`); `invoice_parties` is the
-- customer as recorded at the issue (billing address, business
-- identifiers, masked IBAN and mandate), or as `customers.csv` has it now
-- for a draft (`stages/frozen.rs`). A draft's invoices have no number: they
-- are in customer order.
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
    i.charges_ht,
    i.regularisation_ht,
    i.total_ht,
    i.vat,
    i.total_ttc,
    i.balance_brought_forward,
    i.amount_due,
    i.customer_kind AS kind,
    p.name,
    p.address1,
    p.address2,
    p.postcode,
    p.city,
    p.country,
    p.email,
    p.vat_number,
    p.siret,
    p.iban_masked,
    p.mandate_rum,
    p.mandate_date
FROM invoices i
JOIN invoice_parties p ON p.customer_id = i.customer_id
ORDER BY i.invoice_number, i.customer_id

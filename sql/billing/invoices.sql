-- The `invoices` dataset: the draft invoices with the numbers `bill`
-- assigned (table invoice_numbers) and the dates of the month (params):
-- issue date = the first day after the period, due date = issue date +
-- payment_terms_days of integrator.toml.
SELECT
    n.invoice_number,
    d.customer_id,
    d.customer_kind,
    p.period_start,
    p.period_end,
    p.issue_date,
    p.due_date,
    d.payment_method,
    d.subscription_ht,
    d.options_ht,
    d.usage_ht,
    d.equipment_ht,
    d.charges_ht,
    d.regularisation_ht,
    d.total_ht,
    d.vat,
    d.total_ttc
FROM draft_invoices d
JOIN invoice_numbers n ON n.customer_id = d.customer_id
CROSS JOIN params p
ORDER BY n.invoice_number

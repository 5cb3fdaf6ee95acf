-- The `invoices` dataset: the draft invoices with the numbers `bill`
-- assigned (table invoice_numbers) and the dates of the month (params):
-- issue date = the first day after the period, due date = issue date +
-- payment_terms_days of integrator.toml.
SELECT
    arrow_cast(n.invoice_number, 'Utf8') AS invoice_number,
    arrow_cast(d.customer_id, 'Utf8') AS customer_id,
    arrow_cast(d.customer_kind, 'Utf8') AS customer_kind,
    p.period_start,
    p.period_end,
    p.issue_date,
    p.due_date,
    arrow_cast(d.payment_method, 'Utf8') AS payment_method,
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
ORDER BY 1

-- The `invoices` dataset: the draft invoices with the numbers `bill`
-- assigned (table invoice_numbers) and the dates of the month (params):
-- issue date = the first day after the period, due date = issue date +
-- payment_terms_days of integrator.toml.
--
-- account.md §7: `balance_brought_forward` is the customer's account at
-- the issue date before the invoice (table balances: the ledger's entries
-- dated on or before it, with the credit notes of the regularisation
-- issued with the month); `amount_due` = total_ttc + that balance.
--
-- The payment method is the customer's in customers.csv, unless a returned
-- debit moved the customer to transfer (table transfer_customers) and
-- customers.csv still holds the mandate that was returned, signed no later
-- than the return: a new mandate brings the direct debit back.
SELECT
    n.invoice_number,
    d.customer_id,
    d.customer_kind,
    p.period_start,
    p.period_end,
    p.issue_date,
    p.due_date,
    CASE
        WHEN d.payment_method = 'SEPA_DD' AND t.customer_id IS NOT NULL THEN 'TRANSFER'
        ELSE d.payment_method
    END AS payment_method,
    d.subscription_ht,
    d.options_ht,
    d.usage_ht,
    d.equipment_ht,
    d.charges_ht,
    d.regularisation_ht,
    d.total_ht,
    d.vat,
    d.total_ttc,
    CAST(COALESCE(CAST(b.balance AS DECIMAL(18, 2)), 0) AS DECIMAL(18, 2)) AS balance_brought_forward,
    CAST(d.total_ttc + COALESCE(CAST(b.balance AS DECIMAL(18, 2)), 0) AS DECIMAL(18, 2)) AS amount_due
FROM draft_invoices d
JOIN invoice_numbers n ON n.customer_id = d.customer_id
CROSS JOIN params p
LEFT JOIN balances b ON b.customer_id = d.customer_id
LEFT JOIN (
    SELECT t.customer_id
    FROM transfer_customers t
    JOIN customers c ON c.customer_id = t.customer_id
    WHERE c.mandate_rum = t.mandate_rum
      AND (c.mandate_date IS NULL OR c.mandate_date <= CAST(t.since AS DATE))
) t ON t.customer_id = d.customer_id
ORDER BY n.invoice_number

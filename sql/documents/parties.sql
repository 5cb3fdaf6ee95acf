-- account.md §3: the customer as an issued document prints it, recorded
-- at the issue (dataset `invoice_parties`, `stages/frozen.rs`) or, for a
-- draft, as `customers.csv` has it now. `parties_of` names the customers
-- to record: those with an invoice (its number; empty for a draft) and
-- those with only a regularisation credit note. The IBAN is masked by
-- `frozen.rs` before anything is written: the record keeps no full IBAN.
SELECT
    w.customer_id,
    w.invoice_number,
    COALESCE(c.kind, '') AS kind,
    COALESCE(c.name, '') AS name,
    COALESCE(c.address1, '') AS address1,
    COALESCE(c.address2, '') AS address2,
    COALESCE(c.postcode, '') AS postcode,
    COALESCE(c.city, '') AS city,
    COALESCE(c.country, '') AS country,
    COALESCE(c.email, '') AS email,
    COALESCE(c.vat_number, '') AS vat_number,
    COALESCE(c.siret, '') AS siret,
    COALESCE(w.payment_method, c.payment_method, '') AS payment_method,
    COALESCE(c.iban, '') AS iban,
    COALESCE(c.mandate_rum, '') AS mandate_rum,
    c.mandate_date
FROM parties_of w
LEFT JOIN customers c ON c.customer_id = w.customer_id
ORDER BY w.customer_id

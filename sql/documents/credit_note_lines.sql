-- rating.md §6, account.md §4: the lines of the regularisation credit notes
-- issued with a month (`credit_note_lines`, amounts positive), each with
-- its VAT category, rate and exemption text (NULL in a lake written before
-- the column existed: the category's text then, `credit.rs`). A note's VAT
-- breakdown is computed from them as an invoice's is.
SELECT
    credit_note_number,
    label,
    amount_ht,
    vat_category,
    vat_rate,
    COALESCE(vat_exemption, '') AS vat_exemption
FROM credit_note_lines
ORDER BY credit_note_number, line_key

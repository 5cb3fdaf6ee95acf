-- Every line of the month's invoices, before numbering: the month's own
-- lines and the regularisations of earlier issued months (account.md §4;
-- `regularisation_lines` is registered by `bill`, empty when no earlier
-- month changed).
SELECT * FROM month_lines
UNION ALL
SELECT * FROM regularisation_lines

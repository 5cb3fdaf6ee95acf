-- rating.md §6: every line of the month's invoices, before numbering.
SELECT * FROM subscription_lines
UNION ALL
SELECT * FROM option_lines
UNION ALL
SELECT * FROM usage_lines
UNION ALL
SELECT * FROM equipment_lines

-- The margin shares the month out, it neither loses nor counts twice
-- (docs/ACCOUNTING.md, "Margin"): its retail adds up to the invoices' total
-- HT, its wholesale to that of the rated CDRs and of the exceptions but the
-- conflicting duplicates (a copy of a CDR whose billed copy, from the file
-- sorting first, is counted with the rated ones). One row;
-- `finance` stops when a pair differs.
SELECT
    (SELECT COALESCE(SUM(retail_ht), 0) FROM margin) AS margin_retail_ht,
    (SELECT COALESCE(SUM(total_ht), 0) FROM invoices) AS invoices_total_ht,
    (SELECT COALESCE(SUM(wholesale), 0) FROM margin) AS margin_wholesale,
    (SELECT COALESCE(SUM(wholesale), 0) FROM rated_cdrs)
      + (SELECT COALESCE(SUM(wholesale), 0) FROM rating_exceptions
         WHERE reason <> 'CONFLICTING_DUPLICATE') AS cdrs_wholesale

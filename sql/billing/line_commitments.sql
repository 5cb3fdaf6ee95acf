-- account.md §6: the lines committed during the month, each with its
-- commitment ("Engagement jusqu'au DD/MM/YYYY" on the invoice): every
-- commitment that runs on at least one day of the month, up to its end or
-- to the day the line ended within it. A line committed twice in the month
-- (a new commitment after the first ended) has both. The customer is that
-- of the row that started the commitment.
SELECT
    c.customer_id,
    c.msisdn,
    c.commitment_start,
    c.commitment_end
FROM commitments c
CROSS JOIN params p
WHERE c.commitment_start <= p.month_end
  AND COALESCE(c.ended_on, c.commitment_end) >= p.month_start

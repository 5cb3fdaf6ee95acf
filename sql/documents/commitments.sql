-- account.md §6: the commitments an invoice prints ("Engagement jusqu'au
-- DD/MM/YYYY"), as the issue (or the draft) recorded them, by customer and
-- line.
SELECT
    customer_id,
    msisdn,
    CAST(commitment_end AS VARCHAR) AS commitment_end
FROM commitments
ORDER BY customer_id, msisdn, commitment_end

-- rating.md §1: of a cdr_id with copies of different content, the copy
-- that is billed: the one from the file whose name sorts first (byte order
-- of `source_file`), in whatever order the files landed. One row per
-- cdr_id with a conflicting copy.
--
-- `land` keeps the first landed copy in `cdrs` and writes every later copy
-- with other content to `cdr_conflicts`, with `first_source_file`, the file
-- of the copy in `cdrs`; `all_cdr_conflicts` is that dataset over every
-- month (a copy with another date may sit in another month). So the files
-- of all the copies of an id are known from `cdr_conflicts` alone.
--
-- Ties (two copies in one file, or a file delivered again under the same
-- name): the copy in `cdrs` (landed first), then the earlier line.
-- `from_conflicts` says where the billed copy is; `content_hash` is its
-- content's, when it is a conflicting copy (a third copy with that same
-- content counts once, rating_exceptions.sql).
WITH copies AS (
    SELECT DISTINCT
        cdr_id,
        first_source_file AS source_file,
        FALSE AS from_conflicts,
        CAST(0 AS BIGINT) AS source_line,
        CAST(NULL AS BIGINT) AS content_hash
    FROM all_cdr_conflicts
    UNION ALL
    SELECT cdr_id, source_file, TRUE, source_line, content_hash
    FROM all_cdr_conflicts
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY cdr_id
            ORDER BY source_file, from_conflicts, source_line
        ) AS rank
    FROM copies
)
SELECT cdr_id, from_conflicts, source_file, source_line, content_hash
FROM ranked
WHERE rank = 1

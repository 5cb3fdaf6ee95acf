#!/usr/bin/env python3
"""The floor for `land` (docs/PERFORMANCE.md): DuckDB reading the RatedCDRs
files as typed CSV and writing them to one zstd Parquet file, with no
validation, no de-duplication and no quarantine.

    python3 bench/peer/duckdb_copy.py DIR OUT.parquet

DIR as `mvnobill gen --out DIR` writes it. Prints the seconds it took.
"""
import sys
import time

import duckdb

folder, out = sys.argv[1], sys.argv[2]
started = time.monotonic()
# Read as text, then typed (a value that does not convert becomes NULL):
# DuckDB's typed reader stops at the generated month's bad rows, and its
# `ignore_errors` leaves out whole blocks around them.
duckdb.sql(f"""
COPY (
    SELECT
        cdr_id, msisdn, imsi, event_type,
        try_strptime(start_time, '%d/%m/%Y %H:%M:%S') AS start_time,
        called_number,
        TRY_CAST(duration_s AS BIGINT) AS duration_s,
        TRY_CAST(volume_kb AS BIGINT) AS volume_kb,
        TRY_CAST(units AS BIGINT) AS units,
        visited_mccmnc,
        TRY_CAST(replace(wholesale_eur, ',', '.') AS DECIMAL(18, 6)) AS wholesale_eur
    FROM read_csv('{folder}/ftp/RatedCDRs/*.csv', delim = ';', header = true,
                  quote = '"', all_varchar = true)
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""")
print(f"{time.monotonic() - started:.3f}")

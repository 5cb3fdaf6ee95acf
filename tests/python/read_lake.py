"""Reads an mvnobill lake as an analyst would, with Polars, PyArrow and
DuckDB, and prints what the Rust test checks: types and totals.

Usage: python read_lake.py <lake folder> <month>
"""
import json
import sys

import duckdb
import polars as pl
import pyarrow.dataset as ds

lake, month = sys.argv[1], sys.argv[2]
out = {}

# PyArrow: Hive partitions, Decimal128 money, microsecond UTC timestamps.
invoices = ds.dataset(f"{lake}/invoices", format="parquet", partitioning="hive").to_table()
out["pyarrow_total_ttc"] = str(sum(v.as_py() for v in invoices.column("total_ttc")))
out["pyarrow_total_ttc_type"] = str(invoices.schema.field("total_ttc").type)
cdrs = ds.dataset(f"{lake}/cdrs", format="parquet", partitioning="hive").to_table()
out["pyarrow_start_time_type"] = str(cdrs.schema.field("start_time").type)
out["pyarrow_wholesale_type"] = str(cdrs.schema.field("wholesale_eur").type)

# Polars: scan with Hive partitions.
rated = pl.scan_parquet(f"{lake}/rated_cdrs/**/*.parquet", hive_partitioning=True)
totals = rated.filter(pl.col("month") == month).select(pl.col("amount").sum()).collect()
out["polars_amount"] = str(totals.item())
out["polars_amount_type"] = str(rated.collect_schema()["amount"])

# DuckDB: the same files.
con = duckdb.connect()
row = con.execute(
    f"SELECT sum(total_ht)::VARCHAR, count(*) FROM read_parquet('{lake}/invoices/*/*.parquet', hive_partitioning=true) WHERE month = ?",
    [month],
).fetchone()
out["duckdb_total_ht"], out["duckdb_invoices"] = row[0], row[1]

print(json.dumps(out))

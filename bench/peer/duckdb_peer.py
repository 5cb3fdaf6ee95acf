#!/usr/bin/env python3
"""The benchmark peer of mvnobill: the same month of invoices, the way an
analyst would compute it with DuckDB instead of running the pipeline.

    python3 bench/peer/duckdb_peer.py DIR 2026-10 [--out DIR/peer] [--threads N]
                                      [--check-csv FILE] [--check-expected FILE]

DIR is a folder laid out as `mvnobill gen --out DIR` writes it (and as the
contract's sample dataset is): `DIR/reference/*.csv`, `DIR/ftp/RatedCDRs/*.csv`,
`DIR/ftp/AccountStatus/*.csv`, `DIR/integrator.toml`.

Everything that turns files into figures is DuckDB SQL (below, in order:
landing, rating, billing). Python only lists the files, reads their header
line to match columns by name, runs the statements, and prints the summary.

Outputs (in DIR/peer, or --out):
  DIR/peer/cdrs.parquet   the typed, de-duplicated CDRs (zstd): the landing
  DIR/peer/invoices.csv   customer_id;subscription_ht;options_ht;usage_ht;
                          equipment_ht;total_ht;vat;total_ttc (2 decimals)
  stdout                  a JSON summary (counts, exceptions, totals, timings)

--check-csv FILE        compares with mvnobill's invoices, as written by
                        `mvnobill query --format csv "SELECT customer_id,
                        subscription_ht, options_ht, usage_ht, equipment_ht,
                        total_ht, vat, total_ttc FROM invoices ..."`
--check-expected FILE   compares with a contract expected.json (per-customer
                        figures, counts and exceptions)
Either check exits 1 on any difference (listed on stderr).

Money is DECIMAL(18,6) from the CSV field to the invoice (never DOUBLE).
DuckDB's `/` on DECIMAL returns DOUBLE, so the two divisions of the rules
(price x seconds / 60, fee x days / days_in_month) go through the macros
`div_round6` / `div_round2`: exact integer division of the amount in
millionths, rounded half away from zero. ROUND and CAST on DECIMAL in DuckDB
round half away from zero already (checked: 0.125 -> 0.13, -0.125 -> -0.13).
See README.md for each rule and where it is.
"""

import argparse
import calendar
import json
import os
import sys
import time
from decimal import Decimal

import duckdb

# Columns of the MVNE files: (name, required in the header), as mvnobill
# has them (pipeline/mvne/upstream.rs): a CDR file may lack only `imsi` (a value
# no row requires); an AccountStatus file needs msisdn, status, status_since.
CDR_COLUMNS = [
    ("cdr_id", True), ("msisdn", True), ("imsi", False), ("event_type", True),
    ("start_time", True), ("called_number", True), ("duration_s", True),
    ("volume_kb", True), ("units", True), ("visited_mccmnc", True),
    ("wholesale_eur", True),
]
STATUS_COLUMNS = [
    ("msisdn", True), ("iccid", False), ("imsi", False), ("status", True),
    ("status_since", True), ("activation_date", False),
]

def sql_str(text):
    return "'" + text.replace("'", "''") + "'"


def header_of(path):
    """The column names of a CSV file's first line, or None when the file is
    empty or its header is not UTF-8 (the whole file is then refused)."""
    with open(path, "rb") as f:
        line = f.readline()
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return tuple(name.strip().strip('"').strip() for name in text.split(";"))


def read_csv_call(files, header, rejects):
    """read_csv over a list of files that share one header, every column as
    text (the header's names, in its order). Rows the CSV reader cannot take
    (wrong field count, bad UTF-8, broken quoting) go to the rejects tables
    and are counted as quarantine."""
    file_list = "[" + ", ".join(sql_str(f) for f in files) + "]"
    columns = "{" + ", ".join(f"{sql_str(name)}: 'VARCHAR'" for name in header) + "}"
    return (
        f"read_csv({file_list}, delim=';', header=true, quote='\"', escape='\"', "
        f"columns={columns}, auto_detect=false, filename=true, "
        f"store_rejects=true, rejects_table='{rejects}_errors', rejects_scan='{rejects}_scans')"
    )


def land_folder(con, folder, wanted, view, target, typing):
    """Lands every CSV of `folder`, in file-name order, into table `target`.

    Files are grouped by header so that columns are matched by name; for each
    group, view `view` shows the wanted columns as trimmed text (NULL when
    empty, or absent from an optional column) plus `file`, and `typing` (a
    SELECT over that view) types and checks the rows into `target`. The
    target's rowid follows the files' order, then the rows' order. Returns
    (rows_in, rows quarantined before typing, file count): rows the CSV
    reader rejects (field count, encoding, quoting) and rows of refused files.
    """
    files = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(".csv")
    ) if os.path.isdir(folder) else []
    empty = ", ".join(f"NULL::VARCHAR AS {name}" for name, _ in wanted)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {empty}, NULL::VARCHAR AS file WHERE false")
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {typing}")
    groups = {}
    for path in files:
        groups.setdefault(header_of(path), []).append(path)
    rows_in = 0
    rejected = 0
    for n, (header, group) in enumerate(groups.items()):
        rejects = f"{view}_rejects_{n}"
        if header is None or len(set(header)) != len(header):
            # Empty file, header not UTF-8, a column named twice: the file is
            # refused, counted as one quarantined row (as the pipeline does).
            rows_in += len(group)
            rejected += len(group)
            continue
        source = read_csv_call(group, header, rejects)
        refused = any(req and name not in header for name, req in wanted)
        if refused:
            # A required column is missing: every row of the file is quarantined.
            count = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        else:
            select = ", ".join(
                f"clean({name}) AS {name}" if name in header else f"NULL::VARCHAR AS {name}"
                for name, _ in wanted
            )
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {select}, filename AS file FROM {source}")
            count = con.execute(f"INSERT INTO {target} {typing}").fetchone()[0]
        has_rejects = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"{rejects}_errors"]
        ).fetchone()[0]
        bad = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT scan_id, file_id, line FROM {rejects}_errors)"
        ).fetchone()[0] if has_rejects else 0
        rows_in += count + bad
        rejected += (count + bad) if refused else bad
    return rows_in, rejected, len(files)


# ---------------------------------------------------------------------------
# SQL. Macros first: field cleaning, counts, Paris local time -> UTC, exact
# divisions.
# ---------------------------------------------------------------------------

MACROS = r"""
-- A field as the pipeline reads it: surrounding whitespace trimmed, empty =
-- NULL (trim only when needed: trim with a character list is slow).
CREATE OR REPLACE MACRO clean(s) AS
    NULLIF(CASE WHEN s LIKE ' %' OR s LIKE '% ' OR s LIKE E'\t%' OR s LIKE E'%\t'
                  OR s LIKE E'\r%' OR s LIKE E'%\r' OR s LIKE E'\n%' OR s LIKE E'%\n'
                THEN trim(s, E' \t\r\n') ELSE s END, '');

-- A whole number >= 0 (digits only, at most 18), as BIGINT; NULL otherwise.
CREATE OR REPLACE MACRO to_count(s) AS
    CASE WHEN regexp_full_match(s, '[0-9]{1,18}') THEN CAST(s AS BIGINT) END;

-- An upstream timestamp DD/MM/YYYY HH:MM:SS as a naive local timestamp.
CREATE OR REPLACE MACRO local_ts(s) AS
    CASE WHEN length(s) = 19 THEN try_strptime(s, '%d/%m/%Y %H:%M:%S') END;

-- An upstream date DD/MM/YYYY.
CREATE OR REPLACE MACRO local_date(s) AS
    CASE WHEN length(s) = 10 THEN CAST(try_strptime(s, '%d/%m/%Y') AS DATE) END;

-- The last Sunday of a month (dayofweek: Sunday = 0).
CREATE OR REPLACE MACRO last_sunday(y, m) AS
    last_day(make_date(y, m, 1)) - CAST(dayofweek(last_day(make_date(y, m, 1))) AS INTEGER);

-- Europe/Paris local time -> UTC (EU rule: summer time from the last Sunday
-- of March to the last Sunday of October, at 01:00 UTC). formats.md: a time
-- in the hour repeated in October (02:00-02:59) is the EARLIER instant
-- (UTC+2); a time in the hour skipped in March (02:00-02:59) moves one hour
-- forward: 02:30 -> 03:30 UTC+2 = 01:30 UTC, i.e. 02:30 read at UTC+1. So:
-- UTC+2 from the March Sunday 03:00 local up to (not including) the October
-- Sunday 03:00 local, UTC+1 otherwise. (DuckDB's timezone('Europe/Paris', ts)
-- gives the LATER instant for the repeated hour: not used.) The two local
-- boundaries of each year 1970-2100 are looked up in lists (cheaper than
-- computing them on every row).
SET VARIABLE summer_from = (SELECT list(last_sunday(y::INTEGER, 3) + INTERVAL 3 HOUR ORDER BY y) FROM range(1970, 2101) t(y));
SET VARIABLE summer_to = (SELECT list(last_sunday(y::INTEGER, 10) + INTERVAL 3 HOUR ORDER BY y) FROM range(1970, 2101) t(y));
CREATE OR REPLACE MACRO paris_to_utc(ts) AS
    CAST(ts AS TIMESTAMP) - CASE
        WHEN CAST(ts AS TIMESTAMP) >= getvariable('summer_from')[year(CAST(ts AS TIMESTAMP)) - 1969]
         AND CAST(ts AS TIMESTAMP) <  getvariable('summer_to')[year(CAST(ts AS TIMESTAMP)) - 1969]
        THEN INTERVAL 2 HOUR ELSE INTERVAL 1 HOUR END;

-- round(x / d, 6) and round(x / d, 2), half away from zero, exact: x is a
-- DECIMAL with at most 6 decimals, d a positive integer. The quotient is
-- computed on the integer count of millionths (DuckDB's DECIMAL / INTEGER
-- would be a DOUBLE).
CREATE OR REPLACE MACRO div_round6(x, d) AS
    CAST(
        CAST(sign(CAST(x * 1000000 AS HUGEINT))
             * ((abs(CAST(x * 1000000 AS HUGEINT)) * 2 + d) // (2 * d)) AS DECIMAL(38, 0))
        * 0.000001
    AS DECIMAL(18, 6));
CREATE OR REPLACE MACRO div_round2(x, d) AS
    CAST(
        CAST(sign(CAST(x * 1000000 AS HUGEINT))
             * ((abs(CAST(x * 1000000 AS HUGEINT)) * 2 + d * 10000) // (2 * d * 10000)) AS DECIMAL(38, 0))
        * 0.01
    AS DECIMAL(18, 2));
"""

# The integrator's tables (formats.md): decimal point, dates YYYY-MM-DD.
# mvnobill refuses a table with a bad value; the casts here fail the same way.
REFERENCE = r"""
CREATE OR REPLACE MACRO ref(name) AS TABLE
    SELECT * FROM read_csv(getvariable('refdir') || '/' || name || '.csv',
        delim=';', header=true, quote='"', escape='"', all_varchar=true);

CREATE OR REPLACE TABLE plans AS
SELECT clean(plan_code) AS plan_code,
       CAST(clean(voice_fr_min) AS BIGINT) AS voice_fr_min,
       CAST(clean(sms_fr) AS BIGINT) AS sms_fr,
       CAST(clean(mms_fr) AS BIGINT) AS mms_fr,
       CAST(clean(data_fr_mb) AS BIGINT) AS data_fr_mb
FROM ref('plans');

CREATE OR REPLACE TABLE plan_fees AS
SELECT clean(plan_code) AS plan_code,
       CAST(clean(commitment_months) AS INTEGER) AS commitment_months,
       clean(with_handset) = 'true' AS with_handset,
       CAST(clean(monthly_fee) AS DECIMAL(18, 6)) AS monthly_fee,
       CAST(clean(valid_from) AS DATE) AS valid_from
FROM ref('plan_fees');

CREATE OR REPLACE TABLE options AS
SELECT clean(option_code) AS option_code,
       CAST(clean(monthly_fee) AS DECIMAL(18, 6)) AS monthly_fee,
       -- empty fee with handset = the plain fee (formats.md)
       CAST(COALESCE(clean(monthly_fee_with_handset), clean(monthly_fee)) AS DECIMAL(18, 6)) AS monthly_fee_with_handset,
       clean(allowance_group) AS allowance_group,
       CAST(clean(allowance_qty) AS BIGINT) AS allowance_qty,
       CAST(clean(valid_from) AS DATE) AS valid_from
FROM ref('options');

CREATE OR REPLACE TABLE rate_grids AS
SELECT CAST(clean(grid) AS INTEGER) AS grid,
       clean(zone) AS zone,
       clean(event_type) AS event_type,
       CAST(clean(price) AS DECIMAL(18, 6)) AS price,
       CAST(COALESCE(clean(connect_fee), '0') AS DECIMAL(18, 6)) AS connect_fee,
       CAST(clean(first_increment) AS BIGINT) AS first_increment,
       CAST(clean(next_increment) AS BIGINT) AS next_increment,
       CAST(clean(valid_from) AS DATE) AS valid_from
FROM ref('rate_grids');

CREATE OR REPLACE TABLE destinations AS
SELECT clean(prefix) AS prefix, clean(zone) AS zone FROM ref('destinations');

CREATE OR REPLACE TABLE roaming_zones AS
SELECT clean(mcc) AS mcc, clean(roaming_zone) AS roaming_zone FROM ref('roaming_zones');

CREATE OR REPLACE TABLE handsets AS
SELECT clean(model) AS model,
       clean(plan_code) AS plan_code,
       CAST(clean(commitment_months) AS INTEGER) AS commitment_months,
       CAST(clean(price) AS DECIMAL(18, 6)) AS price,
       CAST(clean(valid_from) AS DATE) AS valid_from
FROM ref('handsets');

CREATE OR REPLACE TABLE customers AS
SELECT clean(customer_id) AS customer_id FROM ref('customers');

CREATE OR REPLACE TABLE subscriptions AS
SELECT clean(msisdn) AS msisdn,
       clean(customer_id) AS customer_id,
       clean(plan_code) AS plan_code,
       CAST(clean(commitment_months) AS INTEGER) AS commitment_months,
       clean(with_handset) = 'true' AS with_handset,
       CAST(clean(rate_grid) AS INTEGER) AS rate_grid,
       clean(options) AS options,
       CAST(clean(start_date) AS DATE) AS start_date,
       CAST(clean(end_date) AS DATE) AS end_date
FROM ref('subscriptions');

-- subscriptions.options: codes separated by ','.
CREATE OR REPLACE TABLE subscription_options AS
SELECT msisdn, start_date, option_code
FROM (SELECT msisdn, start_date, trim(unnest(string_split(options, ','))) AS option_code
      FROM subscriptions WHERE options IS NOT NULL)
WHERE option_code <> '';

CREATE OR REPLACE TABLE handset_sales AS
SELECT clean(sale_id) AS sale_id,
       clean(customer_id) AS customer_id,
       clean(msisdn) AS msisdn,
       clean(model) AS model,
       CAST(clean(sale_date) AS DATE) AS sale_date
FROM ref('handset_sales');
"""

# Landing (formats.md "RatedCDRs", docs/FORMATS.md): every row typed and
# checked, straight from the CSV reader (view cdr_src, one header group at a
# time); a row that breaks a rule has ok = false: quarantine.
CDR_TYPING = r"""
SELECT
    file, cdr_id, msisdn, imsi, event_type,
    paris_to_utc(start_local) AS start_utc,
    CAST(start_local AS DATE) AS local_date,       -- the Paris local date
    called_number, duration_s, volume_kb, units, visited_mccmnc, wholesale_eur,
    COALESCE(
        cdr_id IS NOT NULL
        AND regexp_full_match(msisdn, '[0-9]{8,15}')
        AND (imsi IS NULL OR regexp_full_match(imsi, '[0-9]{15}'))
        AND event_type IN ('VOICE', 'VOICE_IN', 'SMS', 'SMS_IN', 'MMS', 'DATA')
        AND start_local IS NOT NULL
        AND (called_number IS NULL OR regexp_full_match(called_number, '[0-9]{1,20}'))
        AND (called_number IS NOT NULL OR event_type NOT IN ('VOICE', 'SMS', 'MMS'))
        -- any quantity given must be a whole number >= 0 ...
        AND (duration_text IS NULL OR duration_s IS NOT NULL)
        AND (volume_text IS NULL OR volume_kb IS NOT NULL)
        AND (units_text IS NULL OR units IS NOT NULL)
        -- ... and the event type's own quantity is required (units >= 1)
        AND CASE
                WHEN event_type IN ('VOICE', 'VOICE_IN') THEN duration_s IS NOT NULL
                WHEN event_type = 'DATA' THEN volume_kb IS NOT NULL
                ELSE units >= 1
            END
        AND regexp_full_match(visited_mccmnc, '[0-9]{5,6}')
        -- decimal comma, at most 6 decimals, >= 0
        AND wholesale_eur >= 0,
    false) AS ok
FROM (
    SELECT
        file, cdr_id, msisdn, imsi, event_type, called_number, visited_mccmnc,
        local_ts(start_time) AS start_local,
        duration_s AS duration_text, to_count(duration_s) AS duration_s,
        volume_kb AS volume_text, to_count(volume_kb) AS volume_kb,
        units AS units_text, to_count(units) AS units,
        CASE WHEN regexp_full_match(wholesale_eur, '-?[0-9]+(,[0-9]{1,6})?')
             THEN TRY_CAST(replace(wholesale_eur, ',', '.') AS DECIMAL(18, 6)) END AS wholesale_eur
    FROM cdr_src
)
"""

# De-duplication by cdr_id (rating.md §1): files in name order, rows in file
# order (cdr_typed's rowid); the first copy is the one billed. A later copy
# with the same parsed values is dropped; with other values it is a
# conflicting copy. Only the ids seen more than once are sorted.
DEDUP = r"""
CREATE OR REPLACE TABLE dup_copies AS
SELECT t.rowid AS rid, t.*,
       row_number() OVER (PARTITION BY t.cdr_id ORDER BY t.file, t.rowid) AS copy_no
FROM cdr_typed t
WHERE t.ok AND t.cdr_id IN (SELECT cdr_id FROM cdr_typed WHERE ok GROUP BY cdr_id HAVING count(*) > 1);

CREATE OR REPLACE TABLE cdr_conflicts AS
SELECT l.*
FROM dup_copies l
JOIN dup_copies f ON f.cdr_id = l.cdr_id AND f.copy_no = 1
WHERE l.copy_no > 1
  AND (l.msisdn IS DISTINCT FROM f.msisdn
       OR l.imsi IS DISTINCT FROM f.imsi
       OR l.event_type IS DISTINCT FROM f.event_type
       OR l.start_utc IS DISTINCT FROM f.start_utc
       OR l.called_number IS DISTINCT FROM f.called_number
       OR l.duration_s IS DISTINCT FROM f.duration_s
       OR l.volume_kb IS DISTINCT FROM f.volume_kb
       OR l.units IS DISTINCT FROM f.units
       OR l.visited_mccmnc IS DISTINCT FROM f.visited_mccmnc
       OR l.wholesale_eur IS DISTINCT FROM f.wholesale_eur);

-- The landed CDRs: valid rows minus later copies.
CREATE OR REPLACE VIEW cdrs AS
SELECT t.* EXCLUDE (ok)
FROM cdr_typed t
WHERE t.ok AND t.rowid NOT IN (SELECT rid FROM dup_copies WHERE copy_no > 1);
"""

LAND_PARQUET = r"""
COPY (
    SELECT cdr_id, msisdn, imsi, event_type,
           timezone('UTC', start_utc) AS start_time, local_date, called_number,
           duration_s, volume_kb, units, visited_mccmnc, wholesale_eur,
           parse_filename(file) AS source_file
    FROM cdrs
) TO '{path}' (FORMAT parquet, COMPRESSION zstd)
"""

# AccountStatus (docs/FORMATS.md): the rows checked as the pipeline lands
# them (view status_src); the snapshot's day from the file name
# AccountStatus_<YYYYMMDD>_<HH>.csv (a file not so named lands nothing).
STATUS_TYPING = r"""
SELECT file, msisdn, status, since, snapshot_day,
       COALESCE(
           snapshot_day IS NOT NULL
           AND regexp_full_match(msisdn, '[0-9]{8,15}')
           AND (iccid IS NULL OR regexp_full_match(iccid, '[0-9]{19,20}'))
           AND status IN ('ACTIVE', 'SUSPENDED', 'TERMINATED')
           AND (status_since IS NULL OR since IS NOT NULL)
           AND (activation_date IS NULL OR local_date(activation_date) IS NOT NULL),
       false) AS ok
FROM (
    SELECT *, local_ts(status_since) AS since,
           CASE WHEN snap.day <> '' AND TRY_CAST(snap.hour AS INTEGER) BETWEEN 0 AND 23
                THEN CAST(try_strptime(snap.day, '%Y%m%d') AS DATE) END AS snapshot_day
    FROM (
        SELECT *, regexp_extract(parse_filename(file), '^AccountStatus_([0-9]{8})_([0-9]+)[.]',
                                 ['day', 'hour']) AS snap
        FROM status_src
    )
)
"""

# The day each line became TERMINATED: the Paris date of the earliest
# status_since among the snapshot rows that report it TERMINATED, the
# snapshot's own day when status_since is empty.
TERMINATIONS = r"""
CREATE OR REPLACE TABLE terminations AS
SELECT msisdn, min(COALESCE(CAST(since AS DATE), snapshot_day)) AS terminated_on
FROM status_typed
WHERE ok AND status = 'TERMINATED'
GROUP BY msisdn;
"""

# Rating (rating.md §1-5) of the month's events.
RATE = r"""
-- §1: the month's events (Paris local date), with their subscription row
-- (none: NO_SUBSCRIPTION) and §2 the roaming zone of the MCC (unlisted: ROAM_Z3).
CREATE OR REPLACE TABLE events AS
SELECT c.cdr_id, c.msisdn, c.event_type, c.start_utc, c.local_date, c.called_number,
       c.duration_s, c.volume_kb, c.units, c.wholesale_eur,
       s.customer_id, s.rate_grid, s.start_date AS sub_start,
       COALESCE(r.roaming_zone, 'ROAM_Z3') AS roaming_zone
FROM cdrs c
LEFT JOIN subscriptions s
       ON s.msisdn = c.msisdn
      AND c.local_date >= s.start_date
      AND (s.end_date IS NULL OR c.local_date <= s.end_date)
LEFT JOIN roaming_zones r ON r.mcc = left(c.visited_mccmnc, 3)
WHERE c.local_date BETWEEN getvariable('month_start') AND getvariable('month_end');

-- The landed rows are not needed any more (memory).
DROP VIEW cdrs;
DROP TABLE cdr_typed;

-- §2: zone of a called number = its LONGEST prefix in destinations.csv. Each
-- distinct number longer than 6 digits is cut at every prefix length in use
-- and equi-joined with the prefixes.
CREATE OR REPLACE TABLE called_zones AS
WITH numbers AS (
    SELECT DISTINCT called_number FROM events
    WHERE roaming_zone IN ('HOME', 'EU') AND event_type IN ('VOICE', 'SMS', 'MMS')
      AND length(called_number) > 6
),
lengths AS (SELECT DISTINCT length(prefix) AS n FROM destinations)
SELECT n.called_number, arg_max(d.zone, length(d.prefix)) AS zone
FROM numbers n
JOIN lengths l ON l.n <= length(n.called_number)
JOIN destinations d ON d.prefix = left(n.called_number, l.n)
GROUP BY n.called_number;

-- A price row applies from its valid_from to the next version's (an equi-join
-- plus a range test is much faster here than an ASOF join).
CREATE OR REPLACE TABLE grid_versions AS
SELECT *, lead(valid_from) OVER (PARTITION BY grid, zone, event_type ORDER BY valid_from) AS valid_to
FROM rate_grids;

-- §2: context, rating zone and allowance group; price row of the line's grid
-- for the zone and event type with the latest valid_from <= local date;
-- exception (first that applies); §3 billed quantity.
CREATE OR REPLACE TABLE priced AS
WITH zoned AS (
    SELECT e.*,
        e.roaming_zone IN ('HOME', 'EU') AS domestic,
        CASE
            WHEN e.roaming_zone NOT IN ('HOME', 'EU') THEN e.roaming_zone      -- roaming: every type, incoming too
            WHEN e.event_type IN ('DATA', 'VOICE_IN', 'SMS_IN') THEN 'HOME'     -- data; free incoming (decision: zone HOME)
            WHEN length(e.called_number) <= 6 THEN 'FR_SHORT'                   -- short number, no look-up
            ELSE z.zone                                                         -- NULL: NO_DESTINATION
        END AS zone
    FROM events e
    LEFT JOIN called_zones z ON z.called_number = e.called_number
),
grouped AS (
    SELECT *,
        domestic AND event_type IN ('VOICE_IN', 'SMS_IN') AS free,
        CASE WHEN event_type IN ('VOICE', 'VOICE_IN') THEN duration_s
             WHEN event_type = 'DATA' THEN volume_kb
             ELSE units END AS raw_qty,
        CASE
            WHEN NOT domestic THEN NULL                                         -- no allowance when roaming
            WHEN event_type = 'VOICE' AND zone IN ('FR_MOBILE', 'FR_FIXED') THEN 'VOICE_FR'
            WHEN event_type = 'VOICE' AND zone = 'DOM' THEN 'VOICE_DOM'
            WHEN event_type = 'VOICE' AND zone = 'EU' THEN 'VOICE_EU'
            WHEN event_type = 'SMS' AND zone = 'FR_MOBILE' THEN 'SMS_FR'
            WHEN event_type = 'SMS' AND zone = 'EU' THEN 'SMS_EU'
            WHEN event_type = 'MMS' AND zone = 'FR_MOBILE' THEN 'MMS_FR'
            WHEN event_type = 'DATA' THEN 'DATA_FR'
        END AS allowance_group
    FROM zoned
)
SELECT g.*, p.price, p.connect_fee, p.first_increment AS f, p.next_increment AS n,
    CASE
        WHEN g.customer_id IS NULL THEN 'NO_SUBSCRIPTION'
        WHEN g.zone IS NULL THEN 'NO_DESTINATION'
        WHEN NOT g.free AND p.price IS NULL THEN 'NO_PRICE'
    END AS exception,
    CASE
        WHEN g.free OR g.event_type IN ('SMS', 'SMS_IN', 'MMS') THEN g.raw_qty  -- free: raw quantity; messages: units
        WHEN g.raw_qty = 0 THEN 0
        WHEN g.raw_qty <= p.first_increment THEN p.first_increment
        ELSE p.first_increment
             + ((g.raw_qty - p.first_increment + p.next_increment - 1) // p.next_increment) * p.next_increment
    END AS billed_qty
FROM grouped g
LEFT JOIN grid_versions p
       ON p.grid = g.rate_grid AND p.zone = g.zone AND p.event_type = g.event_type
      AND g.local_date >= p.valid_from AND (p.valid_to IS NULL OR g.local_date < p.valid_to);

DROP TABLE events;

-- Subscription rows overlapping the month; period_start = max(start_date,
-- month start) picks the fee, option and allowance versions of the row.
CREATE OR REPLACE TABLE month_subs AS
SELECT s.*,
       greatest(s.start_date, getvariable('month_start')) AS period_start,
       least(COALESCE(s.end_date, getvariable('month_end')), getvariable('month_end')) AS period_end
FROM subscriptions s
WHERE s.start_date <= getvariable('month_end')
  AND (s.end_date IS NULL OR s.end_date >= getvariable('month_start'));

-- The options of those rows, at their version in force on period_start.
CREATE OR REPLACE TABLE month_options AS
SELECT m.msisdn, m.start_date, m.period_start, so.option_code,
       o.monthly_fee, o.monthly_fee_with_handset, o.allowance_group, o.allowance_qty
FROM month_subs m
JOIN subscription_options so ON so.msisdn = m.msisdn AND so.start_date = m.start_date
ASOF LEFT JOIN options o ON o.option_code = so.option_code AND m.period_start >= o.valid_from;

-- §4: one pool per line, subscription row and group: plan + options,
-- unlimited if any is (empty quantity), in billed units (min x 60 s,
-- MB x 1024 KB, messages).
CREATE OR REPLACE TABLE pools AS
WITH grants AS (
    SELECT m.msisdn, m.start_date, g.allowance_group, g.qty
    FROM month_subs m
    JOIN plans p ON p.plan_code = m.plan_code
    CROSS JOIN LATERAL (VALUES
        ('VOICE_FR', p.voice_fr_min * 60),
        ('SMS_FR', p.sms_fr),
        ('MMS_FR', p.mms_fr),
        ('DATA_FR', p.data_fr_mb * 1024)) g(allowance_group, qty)
    UNION ALL
    SELECT msisdn, start_date, allowance_group,
           allowance_qty * CASE WHEN allowance_group LIKE 'VOICE%' THEN 60
                                WHEN allowance_group LIKE 'DATA%' THEN 1024 ELSE 1 END
    FROM month_options
    WHERE allowance_group IS NOT NULL AND monthly_fee IS NOT NULL   -- an option version in force
)
SELECT msisdn, start_date AS sub_start, allowance_group,
       bool_or(qty IS NULL) AS unlimited, COALESCE(sum(qty), 0) AS quantity
FROM grants
GROUP BY ALL;

-- §4: events of one pool consume it in order of (instant, cdr_id byte order);
-- exceptions consume nothing. covered = min(billed, what is left).
-- §5: amount of the overage, rounded to 6 decimals.
CREATE OR REPLACE TABLE rated AS
WITH consumed AS (
    SELECT e.*, p.unlimited, p.quantity AS pool_qty, p.allowance_group IS NOT NULL AS has_pool,
           CASE WHEN p.allowance_group IS NOT NULL AND NOT p.unlimited THEN
               sum(e.billed_qty) OVER (
                   PARTITION BY e.msisdn, e.sub_start, e.allowance_group
                   ORDER BY e.start_utc, e.cdr_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - e.billed_qty
           END AS used_before
    FROM priced e
    LEFT JOIN pools p
           ON p.msisdn = e.msisdn AND p.sub_start = e.sub_start
          AND p.allowance_group = e.allowance_group
    WHERE e.exception IS NULL
),
covered AS (
    SELECT *,
        CASE WHEN NOT has_pool THEN 0
             WHEN unlimited THEN billed_qty
             ELSE least(billed_qty, greatest(pool_qty - used_before, 0)) END AS covered_qty
    FROM consumed
)
SELECT cdr_id, msisdn, customer_id, event_type, start_utc, local_date, roaming_zone, zone,
       allowance_group, billed_qty, covered_qty, billed_qty - covered_qty AS overage_qty,
       CASE
           WHEN free OR billed_qty - covered_qty = 0 THEN CAST(0 AS DECIMAL(18, 6))
           WHEN event_type IN ('VOICE', 'VOICE_IN')
               THEN CAST(connect_fee + div_round6(price * (billed_qty - covered_qty), 60) AS DECIMAL(18, 6))
           WHEN event_type = 'DATA'
               THEN div_round6(price * (billed_qty - covered_qty), 1024)
           ELSE CAST(price * (billed_qty - covered_qty) AS DECIMAL(18, 6))
       END AS amount,
       wholesale_eur AS wholesale
FROM covered;

-- §1: exceptions of the month, with their wholesale cost: rating exceptions
-- and the conflicting copies whose own local date is in the month.
CREATE OR REPLACE TABLE exceptions AS
SELECT cdr_id, msisdn, exception AS reason, wholesale_eur AS wholesale FROM priced WHERE exception IS NOT NULL
UNION ALL
SELECT cdr_id, msisdn, 'CONFLICTING_DUPLICATE', wholesale_eur FROM cdr_conflicts
WHERE local_date BETWEEN getvariable('month_start') AND getvariable('month_end');
"""

# Billing (rating.md §6).
BILL = r"""
-- §6.1 billable days: inside [start, end] and the month, up to and including
-- the day the line became TERMINATED.
CREATE OR REPLACE TABLE billable AS
SELECT *, billable_end - period_start + 1 AS billable_days
FROM (
    SELECT m.*,
           CASE WHEN t.terminated_on < m.period_end THEN t.terminated_on ELSE m.period_end END AS billable_end
    FROM month_subs m
    LEFT JOIN terminations t ON t.msisdn = m.msisdn
)
WHERE billable_end >= period_start;

CREATE OR REPLACE TABLE invoice_lines AS
-- §6.1 subscription: round(fee x days / days_in_month, 2), the plan_fees
-- version in force on the first billable day.
SELECT b.customer_id, 'SUBSCRIPTION' AS kind, b.msisdn, b.plan_code AS code,
       f.monthly_fee AS unit_price,
       div_round2(f.monthly_fee * b.billable_days, getvariable('days_in_month')) AS amount_ht
FROM billable b
ASOF LEFT JOIN plan_fees f
       ON f.plan_code = b.plan_code AND f.commitment_months = b.commitment_months
      AND f.with_handset = b.with_handset AND b.period_start >= f.valid_from
UNION ALL
-- §6.2 options, prorated the same way, with-handset fee for a with_handset row.
SELECT b.customer_id, 'OPTION', b.msisdn, o.option_code,
       CASE WHEN b.with_handset THEN o.monthly_fee_with_handset ELSE o.monthly_fee END,
       div_round2(CASE WHEN b.with_handset THEN o.monthly_fee_with_handset ELSE o.monthly_fee END
                  * b.billable_days, getvariable('days_in_month'))
FROM billable b
JOIN month_options o ON o.msisdn = b.msisdn AND o.start_date = b.start_date
UNION ALL
-- §6.3 usage: per line, event type and zone, round(sum of amounts, 2); zero
-- lines left out.
SELECT customer_id, 'USAGE', msisdn, event_type || ' ' || zone, NULL,
       CAST(round(sum(amount), 2) AS DECIMAL(18, 2))
FROM rated
GROUP BY customer_id, msisdn, event_type, zone
HAVING round(sum(amount), 2) <> 0
UNION ALL
-- §6.4 equipment: sales of the month, at the price for the plan and
-- commitment of the line's subscription on the sale date, else the bare price.
SELECT h.customer_id, 'EQUIPMENT', h.msisdn, h.sale_id,
       COALESCE(offer.price, bare.price),
       CAST(round(COALESCE(offer.price, bare.price), 2) AS DECIMAL(18, 2))
FROM (
    SELECT h.*, s.plan_code, s.commitment_months
    FROM handset_sales h
    LEFT JOIN subscriptions s
           ON s.msisdn = h.msisdn AND h.sale_date >= s.start_date
          AND (s.end_date IS NULL OR h.sale_date <= s.end_date)
    WHERE h.sale_date BETWEEN getvariable('month_start') AND getvariable('month_end')
) h
ASOF LEFT JOIN (SELECT * FROM handsets WHERE plan_code IS NOT NULL) offer
       ON offer.model = h.model AND offer.plan_code = h.plan_code
      AND offer.commitment_months = h.commitment_months AND h.sale_date >= offer.valid_from
ASOF LEFT JOIN (SELECT * FROM handsets WHERE plan_code IS NULL) bare
       ON bare.model = h.model AND h.sale_date >= bare.valid_from;

-- §6: one invoice per customer with a line; VAT = round(total x 0.20, 2).
CREATE OR REPLACE TABLE invoices AS
WITH totals AS (
    SELECT customer_id,
           sum(amount_ht) FILTER (WHERE kind = 'SUBSCRIPTION') AS subscription_ht,
           sum(amount_ht) FILTER (WHERE kind = 'OPTION') AS options_ht,
           sum(amount_ht) FILTER (WHERE kind = 'USAGE') AS usage_ht,
           sum(amount_ht) FILTER (WHERE kind = 'EQUIPMENT') AS equipment_ht,
           sum(amount_ht) AS total_ht
    FROM invoice_lines
    GROUP BY customer_id
)
SELECT customer_id,
       CAST(COALESCE(subscription_ht, 0) AS DECIMAL(18, 2)) AS subscription_ht,
       CAST(COALESCE(options_ht, 0) AS DECIMAL(18, 2)) AS options_ht,
       CAST(COALESCE(usage_ht, 0) AS DECIMAL(18, 2)) AS usage_ht,
       CAST(COALESCE(equipment_ht, 0) AS DECIMAL(18, 2)) AS equipment_ht,
       CAST(total_ht AS DECIMAL(18, 2)) AS total_ht,
       CAST(round(total_ht * 0.20, 2) AS DECIMAL(18, 2)) AS vat,
       CAST(total_ht + round(total_ht * 0.20, 2) AS DECIMAL(18, 2)) AS total_ttc
FROM totals
ORDER BY customer_id;
"""

INVOICES_CSV = r"""
COPY (
    SELECT customer_id,
           printf('%.2f', subscription_ht) AS subscription_ht,
           printf('%.2f', options_ht) AS options_ht,
           printf('%.2f', usage_ht) AS usage_ht,
           printf('%.2f', equipment_ht) AS equipment_ht,
           printf('%.2f', total_ht) AS total_ht,
           printf('%.2f', vat) AS vat,
           printf('%.2f', total_ttc) AS total_ttc
    FROM invoices ORDER BY customer_id
) TO '{path}' (FORMAT csv, DELIMITER ';', HEADER true, QUOTE '')
"""


def run_script(con, script):
    con.execute(script)


def scalar(con, query):
    return con.execute(query).fetchone()[0]


def money(value):
    return "0.00" if value is None else f"{Decimal(value):.2f}"


def check_prices(con):
    """As mvnobill's bill: a subscription or option without a price in force,
    or a handset without a price, stops the run with one line naming it."""
    missing = con.execute(
        """
        SELECT kind || ' ' || code || ' of line ' || msisdn
        FROM invoice_lines WHERE unit_price IS NULL AND kind <> 'USAGE'
        ORDER BY ALL LIMIT 1
        """
    ).fetchone()
    if missing:
        sys.exit(f"error: no price in force for {missing[0]}")


def compare(figures, expected, label):
    """figures, expected: {customer_id: {column: text}} -> list of differences."""
    diffs = []
    for customer in sorted(set(figures) | set(expected)):
        a, b = figures.get(customer), expected.get(customer)
        if a is None or b is None:
            diffs.append(f"{customer}: only in {'peer' if b is None else label}")
            continue
        for column, value in b.items():
            if Decimal(a[column]) != Decimal(value):
                diffs.append(f"{customer} {column}: peer {a[column]}, {label} {value}")
    return diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="dataset folder (reference/, ftp/, integrator.toml)")
    parser.add_argument("month", help="billing month YYYY-MM")
    parser.add_argument("--check-csv", help="mvnobill's invoices (query --format csv) to compare with")
    parser.add_argument("--check-expected", help="an expected.json to compare with")
    parser.add_argument("--out", help="output folder (default: DIR/peer)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    args = parser.parse_args()

    year, month = (int(part) for part in args.month.split("-"))
    days_in_month = calendar.monthrange(year, month)[1]
    root = os.path.abspath(args.dir)
    out = os.path.abspath(args.out) if args.out else os.path.join(root, "peer")
    os.makedirs(out, exist_ok=True)

    started = time.perf_counter()
    seconds = {}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    con.execute("SET VARIABLE refdir = ?", [os.path.join(root, "reference")])
    con.execute(f"SET VARIABLE month_start = DATE '{year:04d}-{month:02d}-01'")
    con.execute(f"SET VARIABLE month_end = DATE '{year:04d}-{month:02d}-{days_in_month:02d}'")
    con.execute(f"SET VARIABLE days_in_month = {days_in_month}")
    run_script(con, MACROS)

    # --- land: CSV -> typed, validated, de-duplicated CDRs -> Parquet ----------
    t = time.perf_counter()
    rows_in, rejected, files = land_folder(
        con, os.path.join(root, "ftp", "RatedCDRs"), CDR_COLUMNS, "cdr_src", "cdr_typed", CDR_TYPING)
    run_script(con, DEDUP)
    con.execute(LAND_PARQUET.format(path=os.path.join(out, "cdrs.parquet").replace("'", "''")))
    land_folder(con, os.path.join(root, "ftp", "AccountStatus"), STATUS_COLUMNS,
                "status_src", "status_typed", STATUS_TYPING)
    run_script(con, TERMINATIONS)
    seconds["land"] = time.perf_counter() - t
    invalid, landed, unique_cdrs, conflicts = con.execute(
        """SELECT (SELECT count(*) FROM cdr_typed WHERE NOT ok), (SELECT count(*) FROM cdr_typed WHERE ok),
                  (SELECT count(*) FROM cdrs), (SELECT count(*) FROM cdr_conflicts)""").fetchone()

    # --- rate --------------------------------------------------------------------
    t = time.perf_counter()
    run_script(con, REFERENCE)
    run_script(con, RATE)
    seconds["rate"] = time.perf_counter() - t

    # --- bill --------------------------------------------------------------------
    t = time.perf_counter()
    run_script(con, BILL)
    check_prices(con)
    con.execute(INVOICES_CSV.format(path=os.path.join(out, "invoices.csv").replace("'", "''")))
    seconds["bill"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started

    exceptions = dict(con.execute(
        "SELECT reason, count(*) FROM exceptions GROUP BY reason ORDER BY reason").fetchall())
    totals = con.execute(
        "SELECT count(*), sum(total_ht), sum(vat), sum(total_ttc) FROM invoices").fetchone()
    rated = con.execute(
        "SELECT count(*), COALESCE(sum(amount), 0), COALESCE(sum(wholesale), 0) FROM rated").fetchone()
    summary = {
        "month": args.month,
        "files": files,
        "rows_in": rows_in,
        "quarantined": rejected + invalid,
        "landed": landed,
        "duplicates": landed - unique_cdrs - conflicts,
        "conflicts": conflicts,
        "unique_cdrs": unique_cdrs,
        "month_cdrs": scalar(con, "SELECT count(*) FROM priced"),
        "rated": rated[0],
        "amount": str(rated[1]),
        "wholesale": str(rated[2]),
        "exceptions": exceptions,
        "exceptions_wholesale": str(scalar(con, "SELECT COALESCE(sum(wholesale), 0) FROM exceptions")),
        "invoice_count": totals[0],
        "invoice_lines": scalar(con, "SELECT count(*) FROM invoice_lines"),
        "total_ht": money(totals[1]),
        "vat": money(totals[2]),
        "total_ttc": money(totals[3]),
        "outputs": {
            "cdrs": os.path.join(out, "cdrs.parquet"),
            "invoices": os.path.join(out, "invoices.csv"),
        },
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "duckdb": duckdb.__version__,
    }

    columns = ["subscription_ht", "options_ht", "usage_ht", "equipment_ht", "total_ht", "vat", "total_ttc"]
    figures = {
        row[0]: dict(zip(columns, (money(v) for v in row[1:])))
        for row in con.execute(f"SELECT customer_id, {', '.join(columns)} FROM invoices").fetchall()
    }
    diffs = []
    if args.check_csv:
        import csv
        with open(args.check_csv, newline="", encoding="utf-8") as f:
            theirs = {row["customer_id"]: {c: row[c] for c in columns} for row in csv.DictReader(f)}
        found = compare(figures, theirs, "mvnobill")
        summary["check_csv"] = {"customers": len(theirs), "differences": len(found)}
        diffs += found
    if args.check_expected:
        with open(args.check_expected, encoding="utf-8") as f:
            expected = json.load(f)
        renamed = {"subscription": "subscription_ht", "options": "options_ht",
                   "usage": "usage_ht", "equipment": "equipment_ht"}
        theirs = {
            customer: {renamed.get(k, k): v for k, v in values.items()}
            for customer, values in expected.get("invoices", {}).items()
        }
        found = compare(figures, theirs, "expected")
        for key in ("rows_in", "quarantined", "unique_cdrs", "month_cdrs", "invoice_count"):
            if key in expected and expected[key] != summary[key]:
                found.append(f"{key}: peer {summary[key]}, expected {expected[key]}")
        for key in ("total_ht", "total_ttc"):
            if key in expected and Decimal(expected[key]) != Decimal(summary[key]):
                found.append(f"{key}: peer {summary[key]}, expected {expected[key]}")
        if "exceptions" in expected and expected["exceptions"] != exceptions:
            found.append(f"exceptions: peer {exceptions}, expected {expected['exceptions']}")
        summary["check_expected"] = {"customers": len(theirs), "differences": len(found)}
        diffs += found

    print(json.dumps(summary, indent=1))
    for line in diffs:
        print(f"difference: {line}", file=sys.stderr)
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()

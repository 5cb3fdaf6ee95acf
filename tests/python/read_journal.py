"""Reads a sales journal CSV the way a spreadsheet or an import tool would:
Python's csv module, `;` separator, UTF-8 with its byte order mark.
Prints what it found as JSON: whether the file starts with a BOM and ends
its lines with CRLF, the header and every row as a mapping."""

import csv
import json
import sys

path = sys.argv[1]
raw = open(path, "rb").read()
with open(path, encoding="utf-8-sig", newline="") as f:
    reader = csv.reader(f, delimiter=";")
    header = next(reader)
    rows = [dict(zip(header, row)) for row in reader]
    widths = sorted({len(row) for row in rows})
lines = raw.split(b"\n")
print(json.dumps({
    "bom": raw.startswith(b"\xef\xbb\xbf"),
    "crlf": all(line.endswith(b"\r") for line in lines[:-1]) and lines[-1] == b"",
    "header": header,
    "rows": rows,
}))

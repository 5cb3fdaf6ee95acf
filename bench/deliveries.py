#!/usr/bin/env python3
"""Helpers of bench/deliveries.sh (not a test): cut a generated month into
deliveries, and write a delivery of late CDRs.

    deliveries.py split SRC DST N
        The RatedCDRs files of SRC (a month as `mvnobill gen` writes it, in
        name order, which is time order) as N files in DST, the rows in the
        same order cut into N equal runs, each with the header (BOM, LF).
        Delivery k is named after the original file that holds its last row
        (RatedCDRs_YYYYMMDD_HHMMSS.csv, the MVNE's delivery time), a second
        later than the one before if that name is taken. Prints one line a
        delivery: name and rows.

    deliveries.py late DIR MONTH LINES PER_TYPE PREFIX OUT
        A delivery of LINES x 2 x PER_TYPE new CDRs dated in MONTH's first
        three days: for each of LINES lines of the month (the first that have
        both an outgoing call and a data session at home), PER_TYPE VOICE and
        PER_TYPE DATA events copied from those two with new ids (PREFIX and a
        counter), each on another day and time of the 1st to the 3rd. Every
        event is older than its pool's last one: each of the 2 x LINES pools
        (line, group) is re-rated. Prints the rows and the pools. A month
        with fewer such lines gives fewer.
"""

import os
import sys
from datetime import datetime, timedelta

BOM = b"\xef\xbb\xbf"


def split(src, dst, n):
    files = sorted(f for f in os.listdir(src) if f.startswith("RatedCDRs_") and f.endswith(".csv"))
    if not files:
        sys.exit(f"no RatedCDRs file in {src}")
    header = None
    counts = []
    for name in files:
        with open(os.path.join(src, name), "rb") as f:
            # gen writes some files with a BOM, some with CRLF: the same
            # columns, written here one way (BOM, LF).
            first = f.readline().removeprefix(BOM).rstrip(b"\r\n")
            if header is None:
                header = first
            elif first != header:
                sys.exit(f"{name}: another header than {files[0]}'s")
            rows = 0
            last = b"\n"
            while chunk := f.read(1 << 22):
                rows += chunk.count(b"\n")
                last = chunk[-1:]
            if last != b"\n":
                rows += 1
            counts.append(rows)
    total = sum(counts)
    if total < n:
        sys.exit(f"{total} rows cannot make {n} deliveries")
    # Delivery k holds rows [bounds[k], bounds[k + 1]) of the month.
    bounds = [k * total // n for k in range(n + 1)]
    # The original file holding each delivery's last row names it.
    names = []
    ends = []
    seen = 0
    for name, rows in zip(files, counts):
        seen += rows
        ends.append((seen, name))
    previous = None
    for k in range(n):
        last_row = bounds[k + 1] - 1
        name = next(nm for end, nm in ends if last_row < end)
        when = datetime.strptime(name[len("RatedCDRs_") : -len(".csv")], "%Y%m%d_%H%M%S")
        if previous is not None and when <= previous:
            when = previous + timedelta(seconds=1)
        previous = when
        names.append(f"RatedCDRs_{when:%Y%m%d_%H%M%S}.csv")
    os.makedirs(dst, exist_ok=True)
    k = 0
    written = 0
    header = BOM + header + b"\n"
    out = open(os.path.join(dst, names[0]), "wb")
    out.write(header)
    for name in files:
        with open(os.path.join(src, name), "rb") as f:
            f.readline()
            for line in f:
                line = line.rstrip(b"\r\n") + b"\n"
                while written >= bounds[k + 1]:
                    out.close()
                    print(f"{names[k]} {bounds[k + 1] - bounds[k]}")
                    k += 1
                    out = open(os.path.join(dst, names[k]), "wb")
                    out.write(header)
                out.write(line)
                written += 1
    out.close()
    print(f"{names[k]} {bounds[k + 1] - bounds[k]}")
    assert k == n - 1 and written == total


def late(folder, month, lines, per_type, prefix, out):
    year, mon = (int(x) for x in month.split("-"))
    files = sorted(f for f in os.listdir(folder) if f.startswith("RatedCDRs_") and f.endswith(".csv"))
    header = None
    voice, data, chosen = {}, {}, []
    for name in files:
        with open(os.path.join(folder, name), encoding="utf-8-sig", newline="") as f:
            first = f.readline()
            if header is None:
                header = first
                cols = first.rstrip("\r\n").split(";")
                at = {c: i for i, c in enumerate(cols)}
            for line in f:
                row = line.rstrip("\r\n").split(";")
                kind, msisdn = row[at["event_type"]], row[at["msisdn"]]
                # At home: the visited network is the SIM's own (allowances apply).
                if row[at["visited_mccmnc"]] != row[at["imsi"]][:5]:
                    continue
                if kind == "VOICE" and msisdn not in voice:
                    voice[msisdn] = row
                elif kind == "DATA" and msisdn not in data:
                    data[msisdn] = row
                else:
                    continue
                if msisdn in voice and msisdn in data:
                    chosen.append(msisdn)
                    if len(chosen) == lines:
                        break
        if len(chosen) == lines:
            break
    if len(chosen) < lines:
        # A small month: every line there is (the pools are printed).
        print(f"only {len(chosen)} lines with a call and a data session at home", file=sys.stderr)
    n = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("\ufeff" + header.rstrip("\r\n") + "\n")
        for i, msisdn in enumerate(chosen):
            for template in (voice[msisdn], data[msisdn]):
                for k in range(per_type):
                    row = list(template)
                    n += 1
                    row[at["cdr_id"]] = f"{prefix}{n:09d}"
                    day = 1 + k % 3
                    second = 8 * 3600 + (k * 613 + i * 37) % (12 * 3600)
                    row[at["start_time"]] = (
                        f"{day:02}/{mon:02}/{year} {second // 3600:02}:{second // 60 % 60:02}:{second % 60:02}"
                    )
                    f.write(";".join(row) + "\n")
    print(f"{n} {2 * lines}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "split":
        split(args[0], args[1], int(args[2]))
    elif command == "late":
        late(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5])
    else:
        sys.exit(f"unknown command {command}")

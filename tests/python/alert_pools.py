"""The allowance pools of the samples' month (tests/fixtures/samples, 2026-10)
computed from the CSV files alone, independently of mvnobill: what
tests/alerts.rs expects of `rate` (the `consumption` dataset) and of the
alerts at 80 % and 100 % (rating.md §1-4, the standard library only).

    python3 tests/python/alert_pools.py [CUTOFF]

prints each pool with a finite, non-zero allowance: line, customer, plan,
pool start, group, allowance and consumed (billed units: seconds, KB,
messages) with the files delivered up to CUTOFF (a `RatedCDRs_` name, e.g.
RatedCDRs_20261016_125700.csv, that file included) and with every file,
and the percentage of each. Run by hand; its figures are written out in
tests/alerts.rs with the arithmetic beside them.
"""

import csv
import datetime
import io
import sys
from collections import defaultdict
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
REFERENCE = SAMPLES / "reference"
CDRS = SAMPLES / "ftp" / "RatedCDRs"
MONTH = (datetime.date(2026, 10, 1), datetime.date(2026, 10, 31))
TYPES = {"VOICE", "VOICE_IN", "SMS", "SMS_IN", "MMS", "DATA"}


def table(name):
    text = (REFERENCE / name).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def day(text):
    return datetime.date.fromisoformat(text) if text else None


def number(text):
    """A non-negative integer, or None for an empty field; raises if not one."""
    if text == "":
        return None
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def read_cdrs(path):
    """The file's valid rows (formats.md: a row that does not parse is
    quarantined, here skipped) and how many were not."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    good, bad = [], 0
    for row in rows:
        try:
            kind = row["event_type"]
            if kind not in TYPES or not row["cdr_id"] or not row["msisdn"]:
                raise ValueError(kind)
            start = datetime.datetime.strptime(row["start_time"], "%d/%m/%Y %H:%M:%S")
            quantity = {
                "VOICE": "duration_s",
                "VOICE_IN": "duration_s",
                "DATA": "volume_kb",
            }.get(kind, "units")
            qty = number(row[quantity])
            if qty is None or (quantity == "units" and qty < 1):
                raise ValueError(row[quantity])
            good.append(
                {
                    "cdr_id": row["cdr_id"],
                    "msisdn": row["msisdn"],
                    "type": kind,
                    "date": start.date(),
                    "called": row["called_number"],
                    "mcc": row["visited_mccmnc"][:3],
                    "qty": qty,
                }
            )
        except (ValueError, KeyError):
            bad += 1
    return good, bad


def longest_prefix(number_text, destinations):
    best = None
    for prefix, zone in destinations:
        if number_text.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, zone)
    return best[1] if best else None


def group_of(kind, zone):
    return {
        ("VOICE", "FR_MOBILE"): "VOICE_FR",
        ("VOICE", "FR_FIXED"): "VOICE_FR",
        ("VOICE", "DOM"): "VOICE_DOM",
        ("VOICE", "EU"): "VOICE_EU",
        ("SMS", "FR_MOBILE"): "SMS_FR",
        ("SMS", "EU"): "SMS_EU",
        ("MMS", "FR_MOBILE"): "MMS_FR",
        ("DATA", "HOME"): "DATA_FR",
    }.get((kind, zone))


def billed(qty, kind, first, following):
    if kind in ("SMS", "MMS", "SMS_IN"):
        return qty
    if qty == 0:
        return 0
    if qty <= first:
        return first
    return first + -(-(qty - first) // following) * following


def pools(cutoff):
    plans = {p["plan_code"]: p for p in table("plans.csv")}
    options = {o["option_code"]: o for o in table("options.csv")}
    subscriptions = table("subscriptions.csv")
    zones = {z["mcc"]: z["roaming_zone"] for z in table("roaming_zones.csv")}
    destinations = [(d["prefix"], d["zone"]) for d in table("destinations.csv")]
    grids = table("rate_grids.csv")
    customers = {c["customer_id"]: c for c in table("customers.csv")}

    # Events: the first copy of each cdr_id, files in name order (rating.md §1).
    seen, events, quarantined = set(), [], 0
    for path in sorted(CDRS.glob("RatedCDRs_*.csv")):
        if cutoff and path.name > cutoff:
            break
        rows, bad = read_cdrs(path)
        quarantined += bad
        for row in rows:
            if row["cdr_id"] in seen:
                continue
            seen.add(row["cdr_id"])
            if MONTH[0] <= row["date"] <= MONTH[1]:
                events.append(row)

    # The pools (rating.md §4): per line and plan, the plan's allowance and
    # the options of its rows overlapping the month, each once.
    in_month = [
        s
        for s in subscriptions
        if day(s["start_date"]) <= MONTH[1] and (not s["end_date"] or day(s["end_date"]) >= MONTH[0])
    ]
    pool_rows = defaultdict(list)
    for s in in_month:
        pool_rows[(s["msisdn"], s["plan_code"])].append(s)
    allowances = {}
    for (msisdn, plan), rows in pool_rows.items():
        start = max(MONTH[0], min(day(s["start_date"]) for s in rows))
        groups = {}
        for group, column, unit in (
            ("VOICE_FR", "voice_fr_min", 60),
            ("SMS_FR", "sms_fr", 1),
            ("MMS_FR", "mms_fr", 1),
            ("DATA_FR", "data_fr_mb", 1024),
        ):
            value = plans[plan][column]
            groups[group] = None if value == "" else int(value) * unit
        codes = sorted({o for s in rows for o in s["options"].split(",") if o})
        for code in codes:
            option = options[code]
            group = option["allowance_group"]
            if not group:
                continue
            unit = 60 if group.startswith("VOICE") else 1024 if group.startswith("DATA") else 1
            quantity = option["allowance_qty"]
            if quantity == "":
                groups[group] = None
            elif group not in groups or groups[group] is not None:
                groups[group] = groups.get(group, 0) + int(quantity) * unit
        for group, allowance in groups.items():
            allowances[(msisdn, plan, start, group)] = (rows[0]["customer_id"], allowance)

    consumed = defaultdict(int)
    for event in events:
        row = next(
            (
                s
                for s in subscriptions
                if s["msisdn"] == event["msisdn"]
                and day(s["start_date"]) <= event["date"]
                and (not s["end_date"] or event["date"] <= day(s["end_date"]))
            ),
            None,
        )
        if row is None:
            continue  # NO_SUBSCRIPTION
        roaming = zones.get(event["mcc"], "ROAM_Z3")
        if roaming not in ("HOME", "EU"):
            continue  # roaming: no allowance
        kind = event["type"]
        if kind in ("VOICE_IN", "SMS_IN"):
            continue
        if kind == "DATA":
            zone = "HOME"
        elif len(event["called"]) <= 6:
            zone = "FR_SHORT"
        else:
            zone = longest_prefix(event["called"], destinations)
            if zone is None:
                continue  # NO_DESTINATION
        prices = [
            g
            for g in grids
            if g["grid"] == row["rate_grid"]
            and g["zone"] == zone
            and g["event_type"] == kind
            and day(g["valid_from"]) <= event["date"]
        ]
        if not prices:
            continue  # NO_PRICE
        price = max(prices, key=lambda g: g["valid_from"])
        group = group_of(kind, zone)
        if group is None:
            continue
        first = int(price["first_increment"] or 0)
        following = int(price["next_increment"] or 0)
        plan = row["plan_code"]
        start = max(MONTH[0], min(day(s["start_date"]) for s in pool_rows[(row["msisdn"], plan)]))
        consumed[(row["msisdn"], plan, start, group)] += billed(event["qty"], kind, first, following)
    return allowances, consumed, quarantined, customers


def main():
    cutoff = sys.argv[1] if len(sys.argv) > 1 else None
    allowances, early, _, customers = pools(cutoff)
    _, full, quarantined, _ = pools(None)
    print(f"# quarantined rows (all files): {quarantined}")
    print("msisdn;customer;email;plan;pool_start;group;allowance;consumed_cutoff;pct_cutoff;consumed_full;pct_full")
    for key in sorted(allowances):
        customer, allowance = allowances[key]
        if allowance is None or allowance == 0:
            continue
        a, b = early.get(key, 0), full.get(key, 0)
        msisdn, plan, start, group = key
        print(
            f"{msisdn};{customer};{customers[customer]['email']};{plan};{start};{group};{allowance};"
            f"{a};{a * 100 / allowance:.2f};{b};{b * 100 / allowance:.2f}"
        )


if __name__ == "__main__":
    main()

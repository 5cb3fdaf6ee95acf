#!/usr/bin/env bash
# Rating as the deliveries arrive (issue 25's targets, docs/PERFORMANCE.md,
# "Rating as deliveries arrive"; not a test). In one run, on a generated
# month:
#
#  1. the DuckDB peer (bench/peer/) on the whole month: wall, CPU, peak RSS;
#  2. the month's RatedCDRs cut into DELIVERIES files in time order
#     (bench/deliveries.py split), delivered one at a time into the folder
#     the configuration syncs from, each followed by `sync`, `land`, `rate`
#     (each timed: wall, user + system CPU, peak RSS). The AccountStatus
#     snapshots arrive with the first delivery after their time, the SIM
#     order with the first; the BilledCDRs file (revenue assurance only,
#     which the peer does not read either) is not delivered;
#  3. the month's close: the last delivery's sync + land + rate and
#     `bill --month M`, against the peer's whole month (target <= 0.1x);
#  4. on a copy of the lake taken before the bill: `rate --month M --full`,
#     its CPU against the sum of the incremental rates' (target: the sum
#     <= 1.5x), and its rated month against the incremental one (same rows,
#     same amount);
#  5. on another copy taken with it, a late delivery: LATE_LINES lines x (LATE_PER_TYPE
#     VOICE + LATE_PER_TYPE DATA) new CDRs dated in the month's first three
#     days (200,000 CDRs over 4,000 pools of 2,000 lines by default), its
#     `rate` (target <= 3 s); the last in-order delivery is the normal one
#     (200,000 CDRs at 10M: target <= 1.5 s);
#  6. each rate's peak RSS (target <= 1 GiB), and a `sync` of the whole
#     month at once from a folder into an empty lake (target <= 256 MB at 30M).
#
# The binary's `rate` decides how a delivery is rated: with `--full` in its
# help (the incremental rate), `rate` alone after each delivery and for the
# late one; without (before it), `rate --month M`, which re-rates the whole
# month each time: the baseline.
#
# Usage: bench/deliveries.sh [CDRS]        (default 10000000; 30000000 for the 30M month)
# Environment: MVNOBILL (the binary; else $CARGO_TARGET_DIR/release/mvnobill
#   or target/release/mvnobill), BENCH_DIR (default /var/tmp/mvnobill-bench),
#   DELIVERIES (50), LATE_LINES (2000), LATE_PER_TYPE (50), SKIP_PEER=1 (no
#   DuckDB run: the close's ratio is then not measured), KEEP_LAKES=1 (keep
#   the lakes for a look afterwards; they are removed otherwise).
# Writes: the generated month in $BENCH_DIR/deliveries-CDRS/ (kept and reused),
#   the figures in $BENCH_DIR/deliveries-results/CDRS-YYYYmmdd-HHMMSS/
#   (steps.tsv: one row a command; summary.txt: the table printed at the end;
#   rate-K.json: each rate's report).
# Needs: a release build; python3 with venv (DuckDB from PyPI, as bench/run.sh);
#   disk: about 800 bytes a CDR while it runs (8 GB at 10M, 24 GB at 30M).
set -euo pipefail
cdrs=${1:-10000000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MVNOBILL:-${CARGO_TARGET_DIR:-$here/../target}/release/mvnobill}
work=${BENCH_DIR:-/var/tmp/mvnobill-bench}
deliveries=${DELIVERIES:-50}
late_lines=${LATE_LINES:-2000}
late_per_type=${LATE_PER_TYPE:-50}
month=2026-10
customers=$((cdrs / 1100))

[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release, or set MVNOBILL)" >&2; exit 1; }
bin=$(realpath "$bin")
mkdir -p "$work"
results="$work/deliveries-results/$cdrs-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
steps="$results/steps.tsv"
printf 'delivery\trows\tcommand\twall_s\tuser_s\tsys_s\tpeak_kb\treport\n' > "$steps"

# The disk is shared: make sure the run fits before it starts.
need=$((cdrs * 800))
avail=$(df --output=avail -B1 "$work" | tail -1)
if [ "$avail" -lt "$need" ]; then
    echo "not enough disk in $work: $((avail >> 30)) GiB free, about $((need >> 30)) GiB needed" >&2
    exit 1
fi

if "$bin" rate --help | grep -q -- '--full'; then
    mode=incremental
    rate_delivery=(rate)
    rate_full=(rate --month "$month" --full)
else
    mode=full
    rate_delivery=(rate --month "$month")
    rate_full=(rate --month "$month")
fi

data="$work/deliveries-$cdrs"
lake="$work/lake-deliveries"
side="$work/lake-deliveries-side"
lateside="$work/lake-deliveries-late"
synclake="$work/lake-deliveries-sync"
source="$work/ftp-deliveries"
cleanup() {
    if [ "${KEEP_LAKES:-0}" != 1 ]; then
        rm -rf "$lake" "$side" "$lateside" "$synclake" "$source"
    fi
    rm -rf "$data/peer" 2>/dev/null || true
}
trap cleanup EXIT

# The month: generated as bench/run.sh does (seed 7, a customer per 1,100
# CDRs), its RatedCDRs then cut into the deliveries (they replace gen's
# files: the peer reads the same rows from them).
if [ ! -f "$data/.complete" ] || [ "$(cat "$data/.complete")" != "$deliveries" ]; then
    rm -rf "$data"
    echo "generating $cdrs CDRs in $data"
    "$bin" gen --out "$data" --cdrs "$cdrs" --customers "$customers" --seed 7 > /dev/null
    rm -rf "$data/ftp/BilledCDRs"
    python3 "$here/deliveries.py" split "$data/ftp/RatedCDRs" "$data/ftp/RatedCDRs.split" "$deliveries" > "$data/deliveries.txt"
    rm -rf "$data/ftp/RatedCDRs"
    mv "$data/ftp/RatedCDRs.split" "$data/ftp/RatedCDRs"
    echo "$deliveries" > "$data/.complete"
fi
mapfile -t names < <(awk '{print $1}' "$data/deliveries.txt")
mapfile -t sizes < <(awk '{print $2}' "$data/deliveries.txt")

# A configuration on SOURCE with its lake at LAKE, beside the generated one
# so that its relative paths still hold.
config() {
    local name=$1 src=$2 lk=$3
    sed -e "s#^url = \"file://.*/lake\"#url = \"file://$lk\"#" \
        -e "s#^url = \"file://.*/ftp\"#url = \"file://$src\"#" \
        "$data/mvnobill.toml" > "$data/$name.toml"
    echo "$data/$name.toml"
}

# timed K ROWS LABEL CONFIG ARGS...: runs mvnobill, appends to steps.tsv,
# leaves "wall user sys peak_kb" in $work/deliveries.t and the JSON report
# in $work/deliveries.json.
timed() {
    local k=$1 rows=$2 label=$3 cfg=$4
    shift 4
    if ! /usr/bin/time -f "%e %U %S %M" -o "$work/deliveries.t" \
        "$bin" --config "$cfg" --json "$@" > "$work/deliveries.json" 2> "$work/deliveries.err"; then
        echo "failed: mvnobill $* (delivery $k)" >&2
        cat "$work/deliveries.err" >&2
        exit 1
    fi
    read -r wall user sys peak < <(tail -1 "$work/deliveries.t")
    local note=""
    case $label in rate*) note=$(rate_note "$work/deliveries.json") ;; esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" "$rows" "$label" "$wall" "$user" "$sys" "$peak" "$note" >> "$steps"
}
# What a rate's JSON report says of the month (the report of one month, or
# of the open months holding it): how it was rated and what it touched.
rate_note() {
    python3 - "$1" "$month" <<'PY'
import json, sys
def walk(x):
    if isinstance(x, dict):
        if x.get("month") == sys.argv[2]:
            yield x
        for v in x.values():
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)
try:
    report = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit()
keys = ["mode", "full_because", "passes", "new_events", "changed_lines", "late_pools", "replaced_rows", "rewritten_files", "rated"]
for m in walk(report):
    print(" ".join(f"{k}={str(m[k]).replace(' ', '_')}" for k in keys if k in m))
    break
PY
}
# The last timed command's figures.
last() { tail -1 "$steps" | cut -f"$1"; }
cpu() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $3 == c { printf "%.2f", $5 + $6 }' "$steps"; }
wall() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $3 == c { print $4 }' "$steps"; }
note() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $3 == c { print $8 }' "$steps"; }
peak_mib() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k && $3 == c { printf "%d", $7 / 1024 }' "$steps"; }
query() {
    "$bin" --config "$1" query --format csv "$2" | tail -1
}

{
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "binary: $bin ($(date -r "$bin" '+%Y-%m-%d %H:%M'), $(sha256sum "$bin" | cut -c1-12)); rate: $mode ($(printf '%s ' "${rate_delivery[@]}")after each delivery)"
    echo "source tree: $(git -C "$here/.." log -1 --format='%h %s' 2>/dev/null | cut -c1-100)"
    echo "month: $cdrs CDRs, $customers customers, $deliveries deliveries of about $((cdrs / deliveries)) CDRs, RatedCDRs $(du -sh "$data/ftp/RatedCDRs" | cut -f1)"
} | tee "$results/machine.txt"

# 6b. The whole month synced at once from a folder (a first sync, or one
# catching up after an outage), into an empty lake.
rm -rf "$synclake"
cfg=$(config deliveries-sync "$data/ftp" "$synclake")
timed sync-all "$cdrs" sync "$cfg" sync
sync_all="$(last 4) s, $(cpu sync-all sync) s CPU, $(peak_mib sync-all sync) MiB"
echo "sync of the whole month from a folder: $sync_all"
rm -rf "$synclake"

# 1. The DuckDB peer on the whole month.
peer_wall=""
if [ "${SKIP_PEER:-0}" != 1 ]; then
    venv="$work/venv"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet -r "$here/peer/requirements.txt"
    fi
    rm -rf "$data/peer"
    /usr/bin/time -f "%e %U %S %M" -o "$work/deliveries.t" \
        "$venv/bin/python" "$here/peer/duckdb_peer.py" "$data" "$month" > "$results/peer.json"
    read -r wall user sys peak < "$work/deliveries.t"
    printf 'peer\t%s\tduckdb\t%s\t%s\t%s\t%s\t\n' "$cdrs" "$wall" "$user" "$sys" "$peak" >> "$steps"
    peer_wall=$wall
    peer_totals=$(python3 -c "import json; d=json.load(open('$results/peer.json')); print(f\"{d['total_ht']},{d['total_ttc']},{d['invoice_count']}\")")
    peer_rated=$(python3 -c "import json; d=json.load(open('$results/peer.json')); print(f\"{d['rated']},{d['amount']}\")")
    echo "DuckDB peer, whole month: $wall s, $(cpu peer duckdb) s CPU, $(peak_mib peer duckdb) MiB; totals $peer_totals (duckdb $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)'))"
    rm -rf "$data/peer"
fi

# 2. The deliveries, one at a time.
rm -rf "$lake" "$side" "$lateside" "$source"
mkdir -p "$source/RatedCDRs" "$source/AccountStatus" "$source/Cartes SIM"
cfg=$(config deliveries "$source" "$lake")
mapfile -t statuses < <(find "$data/ftp/AccountStatus" -name 'AccountStatus_*.csv' -printf '%f\n' | sort)
printf '%-9s %-30s %8s | %-7s | %-22s | %-22s\n' delivery file rows sync "land (wall, CPU, peak)" "rate (wall, CPU, peak)"
for k in $(seq 1 "$deliveries"); do
    name=${names[$((k - 1))]}
    rows=${sizes[$((k - 1))]}
    stamp=${name#RatedCDRs_}
    stamp=${stamp%.csv}
    # Hard links: the delivery costs no disk, and keeps gen's time.
    ln "$data/ftp/RatedCDRs/$name" "$source/RatedCDRs/$name"
    for status in "${statuses[@]}"; do
        # AccountStatus_YYYYMMDD_HH.csv arrives with the first delivery after it.
        s=${status#AccountStatus_}
        s=${s%.csv}
        if [[ "${s}0000" < "$stamp" || "${s}0000" == "$stamp" || $k == "$deliveries" ]] &&
            [ ! -e "$source/AccountStatus/$status" ]; then
            ln "$data/ftp/AccountStatus/$status" "$source/AccountStatus/$status"
        fi
    done
    if [ "$k" = 1 ]; then
        find "$data/ftp/Cartes SIM" -type f -exec ln {} "$source/Cartes SIM/" \;
    fi
    timed "$k" "$rows" sync "$cfg" sync
    timed "$k" "$rows" land "$cfg" land
    timed "$k" "$rows" rate "$cfg" "${rate_delivery[@]}"
    cp "$work/deliveries.json" "$results/rate-$k.json"
    printf '%-9s %-30s %8s | %5s s | %5s s %6s s %5s MiB | %5s s %6s s %5s MiB  %s\n' "$k/$deliveries" "$name" "$rows" \
        "$(wall "$k" sync)" "$(wall "$k" land)" "$(cpu "$k" land)" "$(peak_mib "$k" land)" \
        "$(wall "$k" rate)" "$(cpu "$k" rate)" "$(peak_mib "$k" rate)" "$(note "$k" rate | cut -d' ' -f1-2)"
done

# The rated month as the deliveries left it.
rated_sql="SELECT COUNT(*) AS n, CAST(SUM(amount) AS VARCHAR) AS amount FROM rated_cdrs WHERE month = '$month'"
exceptions_sql="SELECT COUNT(*) AS n FROM rating_exceptions WHERE month = '$month'"
incremental_rated="$(query "$cfg" "$rated_sql"),$(query "$cfg" "$exceptions_sql")"

# copy_lake FROM TO: a copy of a lake; the raw zone's files, never
# rewritten, as hard links.
copy_lake() {
    rm -rf "$2"
    mkdir -p "$2"
    local entry
    for entry in "$1"/* "$1"/.[!.]*; do
        [ -e "$entry" ] || continue
        if [ "$(basename "$entry")" = raw ]; then
            cp -al "$entry" "$2/raw"
        else
            cp -a "$entry" "$2/"
        fi
    done
}

# 4 (first half). A copy of the lake before the bill, for the full rate.
copy_lake "$lake" "$side"
side_cfg=$(config deliveries-side "$source" "$side")
# And one for the late delivery: the month as its 50 deliveries left it
# (one file per delivery), not as the full rate rewrites it (one file).
copy_lake "$lake" "$lateside"
late_cfg=$(config deliveries-late "$source" "$lateside")

# 3. The close: the last delivery (above) and the bill.
timed close "$cdrs" bill "$cfg" bill --month "$month"
invoice_totals=$(query "$cfg" "SELECT SUM(total_ht) AS ht, SUM(total_ttc) AS ttc, COUNT(*) AS n FROM invoices WHERE month = '$month'")
close_wall=$(awk -F'\t' -v k="$deliveries" '($1 == k && ($3 == "sync" || $3 == "land" || $3 == "rate")) || ($1 == "close" && $3 == "bill") { s += $4 } END { printf "%.2f", s }' "$steps")
echo "close: delivery $deliveries's sync $(wall "$deliveries" sync) s + land $(wall "$deliveries" land) s + rate $(wall "$deliveries" rate) s + bill $(wall close bill) s = $close_wall s; invoices $invoice_totals"

# 4. One full rate of the same month, on the copy.
timed full "$cdrs" rate-full "$side_cfg" "${rate_full[@]}"
cp "$work/deliveries.json" "$results/rate-full.json"
full_rated="$(query "$side_cfg" "$rated_sql"),$(query "$side_cfg" "$exceptions_sql")"
echo "rate --full: $(wall full rate-full) s, $(cpu full rate-full) s CPU, $(peak_mib full rate-full) MiB; rated (rows, amount, exceptions): incremental $incremental_rated, full $full_rated"

# 5. The late delivery, after the 50, on the copy.
late_stamp=$(date -d "${names[-1]:10:8} + 1 day" +%Y%m%d)_100000
late_name="RatedCDRs_${late_stamp}.csv"
read -r late_rows late_pools < <(python3 "$here/deliveries.py" late "$data/ftp/RatedCDRs" "$month" \
    "$late_lines" "$late_per_type" "L${late_stamp}_" "$source/RatedCDRs/$late_name")
timed late "$late_rows" sync "$late_cfg" sync
timed late "$late_rows" land "$late_cfg" land
timed late "$late_rows" rate "$late_cfg" "${rate_delivery[@]}"
cp "$work/deliveries.json" "$results/rate-late.json"
echo "late delivery: $late_rows CDRs over $late_pools pools, sync $(wall late sync) s, land $(wall late land) s, rate $(wall late rate) s, $(cpu late rate) s CPU, $(peak_mib late rate) MiB; $(note late rate)"

# The summary.
sums() {
    awk -F'\t' -v c="$1" -v n="$deliveries" '$3 == c && $1 ~ /^[0-9]+$/ && $1 <= n { w += $4; u += $5 + $6; if ($7 > p) p = $7 } END { printf "%.1f s wall, %.1f s CPU, peak %d MiB", w, u, p / 1024 }' "$steps"
}
rate_cpu_sum=$(awk -F'\t' -v n="$deliveries" '$3 == "rate" && $1 ~ /^[0-9]+$/ && $1 <= n { u += $5 + $6 } END { printf "%.2f", u }' "$steps")
rate_peak=$(awk -F'\t' '$3 == "rate" && $1 != "full" { if ($7 > p) { p = $7; k = $1 } } END { printf "%d %s", p / 1024, k }' "$steps")
read -r rate_peak_mib rate_peak_k <<< "$rate_peak"
median_rate=$(awk -F'\t' -v n="$deliveries" '$3 == "rate" && $1 ~ /^[0-9]+$/ && $1 >= 2 && $1 <= n { print $4 }' "$steps" | sort -g |
    awk '{ a[NR] = $1 } END { printf "%s (max %s)", a[int((NR + 1) / 2)], a[NR] }')
full_cpu=$(cpu full rate-full)
ok() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**missed**"; fi; }
last_rows=${sizes[-1]}
{
    echo
    echo "## $cdrs CDRs, $deliveries deliveries, rate: $mode ($(date '+%Y-%m-%d %H:%M'))"
    echo
    echo "| target | measured | status |"
    echo "| --- | --- | --- |"
    if [ -n "$peer_wall" ]; then
        ratio=$(awk "BEGIN { printf \"%.3f\", $close_wall / $peer_wall }")
        echo "| month close: the last delivery's sync + land + rate, then \`bill\`, ≤ 0.1× the DuckDB peer's whole month | $close_wall s (sync $(wall "$deliveries" sync), land $(wall "$deliveries" land), rate $(wall "$deliveries" rate), bill $(wall close bill)) against $peer_wall s: **${ratio}×** | $(ok "$ratio <= 0.1") |"
    else
        echo "| month close ≤ 0.1× the DuckDB peer | $close_wall s (peer not run) | – |"
    fi
    echo "| a delivery: rate of 200K new CDRs into a 10M month ≤ 1.5 s | the last delivery ($last_rows CDRs): $(wall "$deliveries" rate) s, $(cpu "$deliveries" rate) s CPU; median of deliveries 2–$deliveries: $median_rate s | $([ "$last_rows" -le 200000 ] && ok "$(wall "$deliveries" rate) <= 1.5" || echo "(deliveries of $last_rows CDRs)") |"
    echo "| a late delivery: 200K CDRs over 2,000+ pools ≤ 3 s | $late_rows CDRs of the 1st–3rd over $late_pools pools ($((late_pools / 2)) lines): $(wall late rate) s, $(cpu late rate) s CPU | $(ok "$(wall late rate) <= 3") |"
    echo "| CPU of the $deliveries rates ≤ 1.5× one full rate | $rate_cpu_sum s against $full_cpu s: **$(awk "BEGIN { printf \"%.2f\", $rate_cpu_sum / $full_cpu }")×** | $(ok "$rate_cpu_sum <= 1.5 * $full_cpu") |"
    echo "| peak RSS of each rate ≤ 1 GiB | $rate_peak_mib MiB at most (delivery $rate_peak_k); the late one $(peak_mib late rate) MiB | $(ok "$rate_peak_mib <= 1024") |"
    echo "| \`rate --month M --full\` keeps today's figures (10M: 15.6–22.3 s, 29.8–40.0 s CPU, 892–1,052 MB; 30M: 52.4–56.6 s, 1,285–1,373 MiB) | $(wall full rate-full) s, $full_cpu s CPU, $(peak_mib full rate-full) MiB | compare |"
    echo "| \`sync\` of the whole month from a folder ≤ 256 MB (30M) | $sync_all | $(ok "$(peak_mib sync-all sync) <= 256") |"
    echo "| the rated month after the deliveries = one full rate (rows, amount, exceptions) | $incremental_rated / $full_rated | $([ "$incremental_rated" = "$full_rated" ] && echo equal || echo "**different**") |"
    if [ -n "$peer_wall" ]; then
        echo "| the rated month = the DuckDB peer's (rated events, amount) | ${incremental_rated%,*} / $peer_rated | $([ "${incremental_rated%,*}" = "$peer_rated" ] && echo equal || echo "**different**") |"
        # The peer bills subscriptions, options, usage and equipment; not the
        # commitments' termination fees nor the one-off charges billing
        # gained since (bench/peer/README.md).
        echo "| (for information) invoices HT, TTC, count against the peer's | $invoice_totals / $peer_totals | $([ "$invoice_totals" = "$peer_totals" ] && echo equal || echo "differ: the peer bills no termination fees of commitments") |"
    fi
    echo
    echo "The $deliveries deliveries: sync $(sums sync); land $(sums land); rate $(sums rate)."
    echo "Reports: the last delivery's rate: $(note "$deliveries" rate); the full rate: $(note full rate-full); the late delivery's rate: $(note late rate)."
    echo "DuckDB peer: $([ -n "$peer_wall" ] && echo "$peer_wall s, $(cpu peer duckdb) s CPU, $(peak_mib peer duckdb) MiB" || echo "not run")."
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: see the machine line)."
} | tee "$results/summary.txt"
cat "$results/machine.txt" - < "$results/summary.txt" > "$results/summary.tmp" && mv "$results/summary.tmp" "$results/summary.txt"
echo
echo "figures: $results (summary.txt, steps.tsv, rate-*.json)"
fail=0
[ "$incremental_rated" = "$full_rated" ] || { echo "MISMATCH: the rated month after the deliveries is not a full rate's" >&2; fail=1; }
if [ -n "$peer_wall" ] && [ "${incremental_rated%,*}" != "$peer_rated" ]; then
    echo "MISMATCH: mvnobill's rated month and the DuckDB peer's disagree" >&2
    fail=1
fi
exit "$fail"

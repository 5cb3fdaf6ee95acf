#!/usr/bin/env bash
# The performance benchmark of docs/PERFORMANCE.md (not a test).
#
# Generates a month once with `mvnobill gen`, then runs, alternately
# (A/B/A/B), mvnobill's land + rate + bill and the DuckDB peer
# (bench/peer/duckdb_peer.py: the same rules in DuckDB SQL, on the same CSV
# files), each from a cold lake, then mvnobill's land of the RatedCDRs alone
# and DuckDB's typed CSV -> zstd Parquet of them (bench/peer/duckdb_copy.py).
# Prints wall time, CPU time and peak RSS per run and stage, the ratios, and
# checks that both give the same totals.
#
# Usage: bench/run.sh [CDRS] [ROUNDS]      (default 10000000 2)
# Needs: a release build (cargo build --release), python3 with venv.
set -euo pipefail
cdrs=${1:-10000000}
rounds=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MVNOBILL:-${CARGO_TARGET_DIR:-$here/../target}/release/mvnobill}
work=${BENCH_DIR:-/var/tmp/mvnobill-bench}
month=2026-10
customers=$((cdrs / 1100))

venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$here/peer/requirements.txt"
fi

data="$work/data-$cdrs"
if [ ! -f "$data/.complete" ]; then
    rm -rf "$data"
    "$bin" gen --out "$data" --cdrs "$cdrs" --customers "$customers" --seed 7 > /dev/null
    touch "$data/.complete"
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo "data: $cdrs CDRs, $customers customers, RatedCDRs $(du -sh "$data/ftp/RatedCDRs" | cut -f1)"
echo "mvnobill: $bin; duckdb $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')"

# Reads /usr/bin/time's output: "wall user system peak_kb".
timed() {
    local out=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$out" "$@"
}

run_mvnobill() {
    local lake="$work/lake-run"
    rm -rf "$lake"
    # Beside the generated config, so that its relative paths still hold.
    sed "s#^url = \"file://.*/lake\"#url = \"file://$lake\"#" "$data/mvnobill.toml" > "$data/bench.toml"
    "$bin" --config "$data/bench.toml" sync > /dev/null
    local total_wall=0 after_land=0
    for stage in land "rate --month $month" "bill --month $month"; do
        # shellcheck disable=SC2086
        timed "$work/t" "$bin" --config "$data/bench.toml" --json $stage > "$work/last.json"
        read -r wall user sys peak < "$work/t"
        printf '  mvnobill %-22s %7.2f s wall %7.2f s CPU %6d MB peak\n' "$stage" "$wall" "$(echo "$user + $sys" | bc)" "$((peak / 1024))"
        total_wall=$(echo "$total_wall + $wall" | bc)
        [ "$stage" = land ] || after_land=$(echo "$after_land + $wall" | bc)
    done
    echo "$total_wall" > "$work/mvnobill.wall"
    echo "$after_land" > "$work/mvnobill.rate-bill.wall"
    "$bin" --config "$data/bench.toml" query --format csv "SELECT SUM(total_ht) AS ht, SUM(total_ttc) AS ttc, COUNT(*) AS n FROM invoices" | tail -1 > "$work/mvnobill.totals"
}

run_peer() {
    rm -rf "$data/peer"
    timed "$work/t" "$venv/bin/python" "$here/peer/duckdb_peer.py" "$data" "$month" > "$work/peer.json"
    read -r wall user sys peak < "$work/t"
    printf '  duckdb   %-22s %7.2f s wall %7.2f s CPU %6d MB peak\n' "land+rate+bill" "$wall" "$(echo "$user + $sys" | bc)" "$((peak / 1024))"
    echo "$wall" > "$work/peer.wall"
    "$venv/bin/python" -c "import json,sys; d=json.load(open('$work/peer.json')); print(f\"{d['total_ht']},{d['total_ttc']},{d['invoice_count']}\")" > "$work/peer.totals"
}

# Land alone, RatedCDRs only: mvnobill (validating, de-duplicating,
# quarantining) against DuckDB's typed CSV -> zstd Parquet of the same files.
run_land_only() {
    local lake="$work/lake-land-only" source="$work/rated-only-source"
    rm -rf "$lake" "$source"
    mkdir -p "$source"
    ln -s "$data/ftp/RatedCDRs" "$source/RatedCDRs"
    sed -e "s#^url = \"file://.*/lake\"#url = \"file://$lake\"#" \
        -e "s#^url = \"file://.*/ftp\"#url = \"file://$source\"#" \
        "$data/mvnobill.toml" > "$data/land-only.toml"
    "$bin" --config "$data/land-only.toml" sync > /dev/null
    timed "$work/t" "$bin" --config "$data/land-only.toml" land > /dev/null
    read -r wall user sys peak < "$work/t"
    printf '  mvnobill %-22s %7.2f s wall %7.2f s CPU %6d MB peak\n' "land, RatedCDRs only" "$wall" "$(echo "$user + $sys" | bc)" "$((peak / 1024))"
    local m=$wall
    timed "$work/t" "$venv/bin/python" "$here/peer/duckdb_copy.py" "$data" "$work/copy.parquet" > /dev/null
    read -r wall user sys peak < "$work/t"
    printf '  duckdb   %-22s %7.2f s wall %7.2f s CPU %6d MB peak\n' "typed CSV -> Parquet" "$wall" "$(echo "$user + $sys" | bc)" "$((peak / 1024))"
    printf '  ratio land / duckdb copy: %.3f\n' "$(echo "$m / $wall" | bc -l)"
    echo "$m" > "$work/land-only.wall"
    rm -rf "$lake" "$source" "$work/copy.parquet"
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    run_mvnobill
    m=$(cat "$work/mvnobill.wall")
    run_peer
    p=$(cat "$work/peer.wall")
    printf '  ratio mvnobill / duckdb: %.3f\n' "$(echo "$m / $p" | bc -l)"
    run_land_only
    # Like for like: the peer reads the RatedCDRs only, while mvnobill's
    # land above also lands the month's BilledCDRs (for revenue assurance).
    l=$(echo "$(cat "$work/land-only.wall") + $(cat "$work/mvnobill.rate-bill.wall")" | bc)
    printf '  mvnobill land (RatedCDRs only) + rate + bill: %.2f s; ratio to duckdb: %.3f\n' "$l" "$(echo "$l / $p" | bc -l)"
done
echo "totals (HT, TTC, invoices): mvnobill $(cat "$work/mvnobill.totals"), duckdb $(cat "$work/peer.totals")"
if [ "$(cat "$work/mvnobill.totals")" != "$(cat "$work/peer.totals")" ]; then
    echo "MISMATCH: the two implementations disagree" >&2
    exit 1
fi

#!/usr/bin/env bash
# Times each stage on a generated month: wall time, CPU time, peak memory.
# Not a test: figures go to docs/PERFORMANCE.md.
#
# Usage: bench/stages.sh CDRS [CUSTOMERS]
#   CDRS       CDRs in the month (1000000, 10000000, …)
#   CUSTOMERS  default CDRS / 1100 (about 300 CDRs a line a month, 3.6 lines
#              a customer, as an integrator's real traffic)
# Uses $MVNOBILL, else the release binary of $CARGO_TARGET_DIR (or target/).
set -euo pipefail
bin=${MVNOBILL:-${CARGO_TARGET_DIR:-target}/release/mvnobill}
cdrs=$1
customers=${2:-$((cdrs / 1100))}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; binary: $bin"
/usr/bin/time -f "gen: %e s wall, %M KB peak" "$bin" gen --out "$work/g" --cdrs "$cdrs" --customers "$customers" --seed 7
du -sh "$work/g/ftp/RatedCDRs" | sed 's/^/RatedCDRs on disk: /'
for stage in sync land "rate --month 2026-10" "bill --month 2026-10"; do
    # shellcheck disable=SC2086
    /usr/bin/time -f "$stage: %e s wall, %U s user + %S s system CPU, %M KB peak RSS" \
        "$bin" --config "$work/g/mvnobill.toml" $stage > "$work/report.txt"
    sed 's/^/    /' "$work/report.txt" | head -3
done
du -sh "$work/g/lake/cdrs" | sed 's/^/cdrs dataset: /'

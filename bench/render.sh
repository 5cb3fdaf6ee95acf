#!/usr/bin/env bash
# Invoice documents per second (docs/PERFORMANCE.md): a generated month of
# INVOICES customers is rated and billed, then `render` prints every
# invoice to PDF through one warm Chromium and its tabs. Reports wall time,
# invoices per second, and the peak memory of mvnobill and of Chromium (all
# its processes together, sampled every 0.2 s). Not a test.
#
# Usage: bench/render.sh [INVOICES] [TABS] [DETAIL]   (default 1000 2 on_request)
# DETAIL: `on_request` (the default invoice: the annex's usage summary, no
# call list, as nobody asked) or `all` (every invoice lists its charged
# events: about 5 pages instead of 2).
# Uses $MVNOBILL, else the release binary of $CARGO_TARGET_DIR (or target/).
set -euo pipefail
invoices=${1:-1000}
tabs=${2:-2}
detail=${3:-on_request}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MVNOBILL:-${CARGO_TARGET_DIR:-$here/../target}/release/mvnobill}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
month=2026-10

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; binary: $bin; $(chromium --version 2>/dev/null || echo 'chromium: not found')"
"$bin" gen --out "$work/g" --customers "$invoices" --cdrs $((invoices * 300)) --seed 7 > /dev/null
printf '\n[render]\ntabs = %s\ncall_detail = "%s"\n' "$tabs" "$detail" >> "$work/g/mvnobill.toml"
# The pages are written by this run; the timed `render` prints every PDF.
"$bin" --config "$work/g/mvnobill.toml" run --month "$month" --html-only > /dev/null

# Memory of mvnobill and its Chromium together, every 0.2 s: the sum of
# their proportional set sizes (PSS: a page shared by several Chromium
# processes counts once, split between them), in KB.
sample() {
    local peak=0
    while kill -0 "$1" 2>/dev/null; do
        local now=0
        for pid in $(pgrep -f 'mvnobill|chromium'); do
            local pss
            pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
            now=$((now + ${pss:-0}))
        done
        [ "$now" -gt "$peak" ] && peak=$now
        echo "$peak" > "$work/peak"
        sleep 0.2
    done
}
# Pages printed, all PDFs together (poppler's pdfinfo).
pages() {
    local total=0
    for pdf in "$work"/g/lake/documents/"$month"/*.pdf; do
        total=$((total + $(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}')))
    done
    echo "$total"
}
/usr/bin/time -f "%e %U %S %M" -o "$work/t" \
    "$bin" --config "$work/g/mvnobill.toml" --json render --month "$month" > "$work/report.json" &
pid=$!
sample "$pid" &
wait "$pid"
sleep 0.3
read -r wall user sys peak < "$work/t"
pdfs=$(python3 -c "import json; print(json.load(open('$work/report.json'))['pdf_written'])")
together=$(cat "$work/peak")
echo "render: $pdfs PDFs in $wall s wall ($(echo "$user + $sys" | bc) s CPU of mvnobill and the Chromium processes it reaped), $(echo "scale=1; $pdfs / $wall" | bc) PDFs/s, tabs $tabs, call detail $detail, $(pages) pages"
echo "peak RSS of mvnobill: $((peak / 1024)) MB; peak PSS of mvnobill and Chromium together: $((together / 1024)) MB"

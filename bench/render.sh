#!/usr/bin/env bash
# Invoice documents per second (docs/PERFORMANCE.md): a generated month of
# INVOICES customers is rated and billed, then `render` prints every
# invoice to PDF through one warm Chromium and its tabs. Reports wall time,
# invoices per second, and the peak memory of mvnobill and of Chromium (all
# its processes together, sampled every 0.2 s). Not a test.
#
# Usage: bench/render.sh [INVOICES] [TABS] [DETAIL] [BATCH] [SINGLE]
#   (default 1000 2 on_request, batch and single_process as configured)
# DETAIL: `on_request` (the default invoice: the annex's usage summary, no
# call list, as nobody asked) or `all` (every invoice lists its charged
# events: about 5 pages instead of 2). BATCH: `[render] batch`, invoices
# printed as one Chromium document (1: one at a time). SINGLE: `true` for
# `[render] single_process`.
# Uses $MVNOBILL, else the release binary of $CARGO_TARGET_DIR (or target/).
set -euo pipefail
invoices=${1:-1000}
tabs=${2:-2}
detail=${3:-on_request}
batch=${4:-}
single=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MVNOBILL:-${CARGO_TARGET_DIR:-$here/../target}/release/mvnobill}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
month=2026-10

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; binary: $bin; $(chromium --version 2>/dev/null || echo 'chromium: not found')"
"$bin" gen --out "$work/g" --customers "$invoices" --cdrs $((invoices * 300)) --seed 7 > /dev/null
printf '\n[render]\ntabs = %s\ncall_detail = "%s"\n' "$tabs" "$detail" >> "$work/g/mvnobill.toml"
[ -n "$batch" ] && printf 'batch = %s\n' "$batch" >> "$work/g/mvnobill.toml"
[ -n "$single" ] && printf 'single_process = %s\n' "$single" >> "$work/g/mvnobill.toml"
# The pages are written by this run; the timed `render` prints every PDF.
"$bin" --config "$work/g/mvnobill.toml" run --month "$month" --html-only > /dev/null

# A process and all its descendants.
tree() {
    echo "$1"
    local child
    for child in $(pgrep -P "$1"); do tree "$child"; done
}
# Memory of mvnobill and its Chromium together, every 0.2 s: the sum of
# their proportional set sizes (PSS: a page shared by several Chromium
# processes counts once, split between them), in KB. Only the processes
# under this run's mvnobill count (other runs may share the machine).
sample() {
    local peak=0
    while kill -0 "$1" 2>/dev/null; do
        local now=0
        for pid in $(tree "$1"); do
            local pss
            pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
            now=$((now + ${pss:-0}))
        done
        [ "$now" -gt "$peak" ] && peak=$now
        echo "$peak" > "$work/peak"
        # mvnobill's own CPU so far (user + system clock ticks), without
        # its Chromium: the child of `time`, the child of perf.
        local time_pid child ticks
        time_pid=$(pgrep -P "$1" | head -1 || true)
        child=$([ -n "$time_pid" ] && pgrep -P "$time_pid" | head -1 || true)
        ticks=$([ -n "$child" ] && awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || true)
        [ -n "$ticks" ] && echo "$ticks" > "$work/own"
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
# perf stat counts the CPU of every process under it, Chromium's helpers
# included (`time` only sees the processes that were reaped).
perf stat -x, -e task-clock -o "$work/perf" \
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" \
    "$bin" --config "$work/g/mvnobill.toml" --json render --month "$month" > "$work/report.json" &
pid=$!
sample "$pid" &
wait "$pid"
sleep 0.3
read -r wall _user _sys peak < "$work/t"
pdfs=$(python3 -c "import json; print(json.load(open('$work/report.json'))['pdf_written'])")
alone=$(python3 -c "import json; print(json.load(open('$work/report.json')).get('printed_alone', 0))")
together=$(cat "$work/peak")
own=$(echo "scale=2; $(cat "$work/own" 2>/dev/null || echo 0) / $(getconf CLK_TCK)" | bc)
cpu=$(awk -F, '/task-clock/ {printf "%.2f", $1 / 1000}' "$work/perf")
echo "render: $pdfs PDFs in $wall s wall ($cpu s CPU of mvnobill and all its Chromium processes, perf stat; mvnobill itself about $own s), $(echo "scale=1; $pdfs / $wall" | bc) PDFs/s, tabs $tabs, batch ${batch:-as configured}, call detail $detail, $(pages) pages"
[ "$alone" != 0 ] && echo "printed alone (their batch did not split): $alone"
echo "CPU an invoice: $(echo "scale=1; 1000 * $cpu / $pdfs" | bc) ms, of which Chromium $(echo "scale=1; 1000 * ($cpu - $own) / $pdfs" | bc) ms"
echo "peak RSS of mvnobill: $((peak / 1024)) MB; peak PSS of mvnobill and Chromium together: $((together / 1024)) MB"

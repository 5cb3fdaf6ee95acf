#!/usr/bin/env bash
# Cores a command uses over its run (docs/PERFORMANCE.md): runs it, and
# prints every half second the CPU time it took in that half second, in
# cores (user + system, from /proc/<pid>/stat). Not a test.
#
# Usage: bench/cores.sh COMMAND [ARGS...]
#   e.g. bench/cores.sh target/release/mvnobill --config month.toml land
set -euo pipefail
"$@" > /dev/null &
pid=$!
ticks=$(getconf CLK_TCK)
before=0
while sleep 0.5 && kill -0 "$pid" 2> /dev/null; do
    now=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2> /dev/null) || break
    printf '%.1f ' "$(echo "($now - $before) / $ticks / 0.5" | bc -l)"
    before=$now
done
echo
wait "$pid"

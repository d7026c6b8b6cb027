#!/usr/bin/env bash
# Runs `make test` RUNS times in a row on a fresh clone of HEAD while one `yes > /dev/null` per CPU
# keeps every CPU busy: the suite must not depend on an idle machine. The busy processes are
# started and stopped here (also when a run fails or the script is interrupted).
#
#   bash scripts/loaded-runs.sh [RUNS]      (default 5; as root; prints one line per run)
#
# The logs of each run stay in $LOADED_RUNS_DIR (default /tmp/lb-loaded-runs) as run-N.log.
set -uo pipefail

runs="${1:-5}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${LOADED_RUNS_DIR:-/tmp/lb-loaded-runs}"
clone="$out/clone"
cpus="$(nproc)"
busy=()

stop_busy() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null; done
  wait "${busy[@]}" 2>/dev/null
  busy=()
}
trap stop_busy EXIT INT TERM

rm -rf "$out" && mkdir -p "$out"
git clone -q "$repo" "$clone" || exit 2
echo "clone of $(git -C "$clone" rev-parse --short HEAD) in $clone; $cpus CPUs kept busy by yes"

for _ in $(seq "$cpus"); do
  yes > /dev/null &
  busy+=("$!")
done

failed=0
for n in $(seq "$runs"); do
  start=$(date +%s)
  if (cd "$clone" && make test) > "$out/run-$n.log" 2>&1; then verdict=passed; else verdict=FAILED; failed=$((failed + 1)); fi
  summary="$(sed 's/\x1b\[[0-9;]*m//g' "$out/run-$n.log" | grep -E '^ +Tests ' | tail -1 | tr -s ' ')"
  echo "run $n/$runs: $verdict in $(( $(date +%s) - start )) s;${summary}"
done
stop_busy
echo "$((runs - failed)) of $runs runs passed (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/ring.sh - ring-bench (bench/ring.c) in ROUNDS rounds and the median of
# each row: our virtqueue driver and device sides on two threads, against a
# bare exchange of indices between the same threads.  Each row's "%bare" is
# the median of the rounds' own ratios, because ours and bare run side by
# side within a round.  The load average is printed before and after: on a
# shared machine, compare only figures taken at similar loads.
#
# Knobs (environment): BUILD (build), ROUNDS (3), SECS (0.5 per run; 0: a
# fixed count of requests), QSIZE (256), BENCH_ARGS (more ring-bench flags,
# e.g. "--batch 32").
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-0.5}
QSIZE=${QSIZE:-256}
BENCH_ARGS=${BENCH_ARGS:-}
BENCH=$BUILD/bench/ring-bench

command -v python3 >/dev/null || { echo "ring.sh: python3 needed for the table" >&2; exit 1; }
if [ ! -f "$BUILD/build.ninja" ]; then
	make build BUILD="$BUILD" >/dev/null
fi
ninja -C "$BUILD" bench/ring-bench >/dev/null

OUT=$(mktemp -d /tmp/ring-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

args=(--queue-size "$QSIZE" --json)
[ "$SECS" != 0 ] && args+=(--seconds "$SECS")
# shellcheck disable=SC2206
args+=($BENCH_ARGS)

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r of $ROUNDS ..." >&2
	"$BENCH" "${args[@]}" >"$OUT/round$r.json"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT"/round*.json <<'PY'
import json, statistics, sys

runs = [json.load(open(p)) for p in sys.argv[1:]]
rows = {}
for run in runs:
    for r in run["rows"]:
        rows.setdefault((r["layout"], r["event_idx"], r["batch"]), []).append(r)

med = lambda rs, k: statistics.median(r[k] for r in rs)
print(f"ring-bench: queue size {runs[0]['queue_size']}, CPUs {runs[0]['cpus']}, "
      f"median of {len(runs)} rounds")
print(f"{'layout':6} {'event_idx':9} {'batch':>5} {'ours_Mreq/s':>12} {'bare_Mreq/s':>12} "
      f"{'%bare':>7} {'kicks/req':>9} {'calls/req':>9}")
for (layout, evidx, batch), rs in rows.items():
    print(f"{layout:6} {'on' if evidx else 'off':9} {batch:5} {med(rs, 'ours_mreqs'):12.2f} "
          f"{med(rs, 'bare_mreqs'):12.2f} {med(rs, 'percent_of_bare'):6.1f}% "
          f"{med(rs, 'kicks_per_req'):9.4f} {med(rs, 'calls_per_req'):9.4f}")
PY

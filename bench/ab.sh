#!/usr/bin/env bash
# bench/ab.sh OLD_VHOSTD NEW_VHOSTD: two vhostd builds side by side, one run.
#
# For a change to vhostd itself (a before/after table in a closing note):
# the same vhost-bench drives a null device on each binary in turn, rounds
# interleaved (A, B, A, B ...) so that the machine's noise hits both alike,
# and prints medians and the B/A ratio of IOPS, p50 latency and the
# daemon's CPU time per request.
#
# Knobs (environment): BUILD (build: where vhost-bench is), ROUNDS (3),
# SECS (3), ROWS (a regex on row names), A_ARGS / B_ARGS (extra vhostd
# options before the device, e.g. "--io-threads 0"), A_ENV / B_ENV
# (environment for each daemon, e.g. "VHOSTD_IO_URING=coop"; the same
# binary twice compares settings), DEV_ARGS (extra --blk options, e.g.
# ",poll-us=0"), BACKEND (null, or file: a 1 GiB image in a temporary
# folder, opened with cache=none).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
	echo "usage: bench/ab.sh OLD_VHOSTD NEW_VHOSTD" >&2
	exit 2
fi
A=$1
B=$2
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
ROWS=${ROWS:-.}
A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
A_ENV=${A_ENV:-}
B_ENV=${B_ENV:-}
DEV_ARGS=${DEV_ARGS:-}
BACKEND=${BACKEND:-null}
BENCH=$BUILD/vhost-bench
[ -x "$BENCH" ] || { echo "bench/ab.sh: no $BENCH (make build)" >&2; exit 2; }

# name|vhost-bench arguments
ROW_LIST=(
	"qd1 int|--rw randread --bs 4k --iodepth 1"
	"qd32 int|--rw randread --bs 4k --iodepth 32"
	"qd1 poll|--rw randread --bs 4k --iodepth 1 --poll"
	"qd32 poll|--rw randread --bs 4k --iodepth 32 --poll"
	"rate 20k qd4|--rw randread --bs 4k --iodepth 4 --rate 20000"
	"rate 100k qd4|--rw randread --bs 4k --iodepth 4 --rate 100000"
)

T=$(mktemp -d /tmp/vhostd-ab.XXXXXX)
DPID=
cleanup() {
	if [ -n "$DPID" ]; then
		kill "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BACKEND" = file ]; then
	dd if=/dev/urandom of="$T/disk.img" bs=1M count=1024 status=none
	DEV="path=$T/disk.img,cache=none"
else
	DEV="backend=null,size=1G"
fi

# run_one BIN ARGS ENV ROW: one measurement, JSON to stdout.
run_one() {
	local bin=$1 dargs=$2 denv=$3 row=$4 out
	# shellcheck disable=SC2086 # word splitting of the knobs is wanted
	env $denv "$bin" $dargs --blk "id=ab,$DEV,socket=$T/ab.sock$DEV_ARGS" \
		2>>"$T/daemon.log" &
	DPID=$!
	for _ in $(seq 100); do [ -S "$T/ab.sock" ] && break; sleep 0.05; done
	# shellcheck disable=SC2086
	out=$("$BENCH" --socket "$T/ab.sock" ${row#*|} --time "$SECS" --json --cpu-pid "$DPID")
	kill "$DPID"
	wait "$DPID" || true
	DPID=
	echo "$out"
}

echo "load before: $(cat /proc/loadavg)"
for r in "${ROW_LIST[@]}"; do
	name=${r%%|*}
	[[ $name =~ $ROWS ]] || continue
	for ((i = 0; i < ROUNDS; i++)); do
		run_one "$A" "$A_ARGS" "$A_ENV" "$r" >"$T/a.$i.json"
		run_one "$B" "$B_ARGS" "$B_ENV" "$r" >"$T/b.$i.json"
	done
	python3 - "$name" "$T" "$ROUNDS" <<'PY'
import json, statistics, sys
name, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(side, key):
    vals = []
    for i in range(n):
        j = json.load(open(f"{d}/{side}.{i}.json"))
        if key == "p50":
            v = j["latency-us"]["p50"]
        else:
            v = j.get(key)
        vals.append(float(v) if v is not None else float("nan"))
    return statistics.median(vals)
row = [name]
for key in ("iops", "p50", "cpu-us-per-request"):
    a, b = load("a", key), load("b", key)
    row += [f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}x" if a else "-"]
print("| " + " | ".join(row) + " |")
PY
done | {
	echo "| row | A IOPS | B IOPS | B/A | A p50 us | B p50 us | B/A | A CPU-us/req | B CPU-us/req | B/A |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	cat
}
echo "load after: $(cat /proc/loadavg)"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/rbd.sh - vhost-bench against vhostd's backend=rbd and against
# qemu-storage-daemon's rbd driver (QSD), on the same one-node Ceph cluster
# and the same image, side by side in one run, with vhostd/QSD ratios.
#
# The cluster is tests/ceph/ceph-up.sh's (memstore: the OSD keeps the data
# in memory, so this measures the client side - librbd, the messenger, the
# daemons - and the OSD's CPU, not a disk), or the one VHOSTD_CEPH_CONF
# names.  The image (IMAGE_SIZE) is written through once with `rbd bench`
# so reads reach the OSD instead of librbd's "object does not exist"
# shortcut.  Both daemons run librbd without its cache (vhostd cache=none,
# QSD cache.direct=on: both set rbd_cache=false, as QEMU does), one queue,
# both up at once but measured one at a time; rounds alternate which goes
# first.  Every run passes --cpu-pid: the daemon's CPU time per request
# (all threads, librbd's included).
#
# Knobs (environment): BUILD (build), ROUNDS (2), SECS (8), IMAGE_SIZE
# (512M), ROWS (an extended regular expression on the workload names),
# VHOSTD_ARGS (extra --blk options for vhostd, e.g. ",poll-us=0").
# Compare only within one run: on a shared 2-core machine the OSD, the
# daemon under test and vhost-bench all compete for the same CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-8}
IMAGE_SIZE=${IMAGE_SIZE:-512M}
ROWS=${ROWS:-}
VHOSTD_ARGS=${VHOSTD_ARGS:-}

# name|vhost-bench flags (--time, --json and --cpu-pid are added)
ALL_WORKLOADS=(
	"randread 4k qd32|--rw randread --bs 4k --iodepth 32"
	"randread 4k qd1|--rw randread --bs 4k --iodepth 1"
	"randwrite 4k qd32|--rw randwrite --bs 4k --iodepth 32"
)
WORKLOADS=()
for w in "${ALL_WORKLOADS[@]}"; do
	if [ -z "$ROWS" ] || [[ ${w%%|*} =~ $ROWS ]]; then WORKLOADS+=("$w"); fi
done
[ ${#WORKLOADS[@]} -gt 0 ] || { echo "rbd.sh: ROWS='$ROWS' matches no workload" >&2; exit 1; }

VHOSTD=$BUILD/vhostd
BENCH=$BUILD/vhost-bench
QSD=$(command -v qemu-storage-daemon || true)
for p in "$VHOSTD" "$BENCH"; do
	[ -x "$p" ] || { echo "rbd.sh: $p not built (make build)" >&2; exit 1; }
done
[ -n "$QSD" ] || { echo "rbd.sh: qemu-storage-daemon not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/vhostd-bench-rbd.XXXXXX)
# shellcheck source=bench/procs.sh
. "$(dirname "$0")/procs.sh"
CLEANUP_PATHS+=("$WORK")
# shellcheck source=tests/ceph/lib.sh
. tests/ceph/lib.sh
# The cluster first: its folder is inside $WORK, which cleanup removes.
trap 'ceph_cluster_down >/dev/null; cleanup' EXIT

wait_for_socket() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	echo "rbd.sh: $1 did not appear" >&2
	exit 1
}

# --- the cluster, the image, the daemons ---
ceph_cluster "$WORK/ceph" >&2 || { echo "rbd.sh: no Ceph cluster: ${CEPH_WHY:-}" >&2; exit 1; }
IMG=vhd-bench-$$
ceph_image "$IMG" "$IMAGE_SIZE" >&2
echo "rbd.sh: writing all of rbd/$IMG ($IMAGE_SIZE) ..." >&2
timeout 600 rbd -c "$CEPH_CONF" bench --io-type write --io-pattern seq --io-size 4M \
	--io-threads 4 --io-total "$IMAGE_SIZE" "rbd/$IMG" >/dev/null

"$VHOSTD" --log-level warn \
	--blk "id=rbd,backend=rbd,pool=rbd,image=$IMG,conf=$CEPH_CONF,cache=none,socket=$WORK/vhostd.sock$VHOSTD_ARGS" &
VHOSTD_PID=$!
PIDS+=("$VHOSTD_PID")
"$QSD" --blockdev "driver=rbd,node-name=r0,pool=rbd,image=$IMG,conf=$CEPH_CONF,cache.direct=on" \
	--export "type=vhost-user-blk,id=e0,node-name=r0,addr.type=unix,addr.path=$WORK/qsd.sock,writable=on,num-queues=1" &
QSD_PID=$!
PIDS+=("$QSD_PID")
wait_for_socket "$WORK/vhostd.sock"
wait_for_socket "$WORK/qsd.sock"

# --- the runs ---
RESULTS=$WORK/results
: >"$RESULTS"
run() { # daemon workload-index round
	local daemon=$1 w=${WORKLOADS[$2]} round=$3 name flags out pid=$VHOSTD_PID
	name=${w%%|*}
	flags=${w##*|}
	[ "$daemon" = qsd ] && pid=$QSD_PID
	# shellcheck disable=SC2086 # flags is a list of flags
	if out=$("$BENCH" --socket "$WORK/$daemon.sock" $flags --time "$SECS" --json \
		--cpu-pid "$pid" 2>&1); then
		printf '%s\t%s\t%s\t%s\n' "$name" "$daemon" "$round" "$out" >>"$RESULTS"
		python3 -c 'import json,sys
r = json.loads(sys.argv[1])
print("  round %s  %-18s %-7s %7.0f IOPS  p50 %7.1f us  p99 %7.1f us  %6.1f CPU-us/req"
      % (*sys.argv[2:], r["iops"], r["latency-us"]["p50"], r["latency-us"]["p99"],
         r["cpu-us-per-request"]))' "$out" "$round" "$name" "$daemon" >&2
	else
		printf '%s\t%s\t%s\tFAIL\n' "$name" "$daemon" "$round" >>"$RESULTS"
		echo "  round $round $name $daemon: FAILED: $out" >&2
	fi
}

LOAD_START=$(cat /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order=(vhostd qsd); else order=(qsd vhostd); fi
	for ((w = 0; w < ${#WORKLOADS[@]}; w++)); do
		for daemon in "${order[@]}"; do run "$daemon" "$w" "$round"; done
	done
done

python3 - "$RESULTS" "$ROUNDS" "$SECS" "$IMAGE_SIZE" "$LOAD_START" "$(cat /proc/loadavg)" \
	"$VHOSTD_ARGS" <<'PY'
import json, statistics, sys
path, rounds, secs, size, load0, load1, vargs = sys.argv[1:]
runs, order = {}, []
for line in open(path):
    name, daemon, rnd, out = line.rstrip("\n").split("\t", 3)
    if name not in order:
        order.append(name)
    runs.setdefault(name, {}).setdefault(daemon, []).append(None if out == "FAIL" else json.loads(out))

def m(rs, get):
    xs = [get(r) for r in rs if r]
    return statistics.median(xs) if xs else None

def num(x, f="{:.0f}"):
    return "FAIL" if x is None else f.format(x)

def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"

iops = lambda r: r["iops"]
p50 = lambda r: r["latency-us"]["p50"]
p99 = lambda r: r["latency-us"]["p99"]
cpu = lambda r: r["cpu-us-per-request"]
print(f"vhost-bench on one RBD image ({size}, written through), one-node memstore cluster;")
print(f"1 queue, {secs} s per run, {rounds} rounds interleaved; medians over rounds")
print(f"  vhostd backend=rbd,cache=none{vargs}  vs  qemu-storage-daemon driver=rbd,cache.direct=on")
print(f"  /proc/loadavg before: {load0}")
print(f"  /proc/loadavg after:  {load1}")
fmt = "{:<18} {:>8} {:>8} {:>6}  {:>8} {:>8} {:>6}  {:>8} {:>8} {:>6}  {:>7} {:>7} {:>6}"
print(fmt.format("", "vhostd", "qsd", "IOPS", "vhostd", "qsd", "p50", "vhostd", "qsd", "p99",
                 "vhostd", "qsd", "CPU"))
print(fmt.format("workload", "IOPS", "IOPS", "ratio", "p50 us", "p50 us", "ratio", "p99 us",
                 "p99 us", "ratio", "CPU-us", "CPU-us", "ratio"))
for name in order:
    v, q = runs[name].get("vhostd", []), runs[name].get("qsd", [])
    print(fmt.format(name, num(m(v, iops)), num(m(q, iops)), ratio(m(v, iops), m(q, iops)),
                     num(m(v, p50), "{:.1f}"), num(m(q, p50), "{:.1f}"), ratio(m(v, p50), m(q, p50)),
                     num(m(v, p99), "{:.1f}"), num(m(q, p99), "{:.1f}"), ratio(m(v, p99), m(q, p99)),
                     num(m(v, cpu), "{:.1f}"), num(m(q, cpu), "{:.1f}"), ratio(m(v, cpu), m(q, cpu))))
print()
print("IOPS ratio = vhostd / qsd (above 1: vhostd faster); latency ratios vhostd / qsd (below 1:")
print("vhostd quicker); CPU-us = the daemon's CPU time per request, librbd's threads included.")
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/blk.sh - vhost-bench against vhostd and qemu-storage-daemon (QSD),
# side by side in one run, and a table of vhostd/QSD ratios.
#
# Two comparisons, on terms as equal as the two programs allow:
#   null  QSD's null-co driver with read-zeroes=on against vhostd's
#         backend=null: no storage on either side; reads memset the guest's
#         buffers to zero, writes are dropped.  Only the datapath is measured.
#   file  the same image on disk, O_DIRECT on both sides: vhostd cache=none,
#         QSD cache.direct=on,aio=io_uring (and locking=off, since vhostd
#         holds its own lock on the image; the two never run at once).
#
# Every workload runs on every target once per round; rounds alternate
# which daemon goes first, so slow drift of the machine hits both alike.
# Compare only within one run: figures swing from run to run.
#
# vhostd's queue thread spins up to 50 us on an idle ring before sleeping
# (poll-us); QSD's main loop does not, but an IOThread does (poll-max-ns,
# 32 us by default): QSD_IOTHREAD=1 runs both QSD exports in one, which
# compares polling with polling.
#
# Knobs (environment): BUILD (build), ROUNDS (3), SECS (5), QUEUES (1),
# NULL_SIZE (1G), FILE_SIZE (1G), FILE_DIR (/var/tmp: must be a disk, not
# tmpfs), BENCH_ARGS (extra vhost-bench flags, e.g. "--poll"),
# VHOSTD_ARGS (extra --blk options for vhostd, e.g. ",poll-us=0"),
# QSD_IOTHREAD (0).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
QUEUES=${QUEUES:-1}
NULL_SIZE=${NULL_SIZE:-1G}
FILE_SIZE=${FILE_SIZE:-1G}
FILE_DIR=${FILE_DIR:-/var/tmp}
BENCH_ARGS=${BENCH_ARGS:-}
VHOSTD_ARGS=${VHOSTD_ARGS:-}
QSD_IOTHREAD=${QSD_IOTHREAD:-0}

# name:rw:bs:iodepth
WORKLOADS=(
	"randread 4k qd32:randread:4k:32"
	"randwrite 4k qd32:randwrite:4k:32"
	"read 128k qd8:read:128k:8"
)

VHOSTD=$BUILD/vhostd
BENCH=$BUILD/vhost-bench
QSD=$(command -v qemu-storage-daemon || true)
for p in "$VHOSTD" "$BENCH"; do
	[ -x "$p" ] || { echo "blk.sh: $p not built (make build)" >&2; exit 1; }
done
[ -n "$QSD" ] || { echo "blk.sh: qemu-storage-daemon not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "blk.sh: python3 needed for the table" >&2; exit 1; }

SOCKS=$(mktemp -d /tmp/vhostd-bench.XXXXXX)
DISK=$(mktemp -d "$FILE_DIR/vhostd-bench.XXXXXX")
PIDS=()

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$SOCKS" "$DISK"
}
trap cleanup EXIT

bytes() { # 1G -> 1073741824
	numfmt --from=iec "$1"
}

wait_for_socket() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	echo "blk.sh: $1 did not appear" >&2
	exit 1
}

# --- the images and the daemons ---------------------------------------------

null_bytes=$(bytes "$NULL_SIZE")
file_bytes=$(bytes "$FILE_SIZE")
# Really written, so O_DIRECT reads hit the disk rather than unwritten extents.
echo "blk.sh: writing a $FILE_SIZE image in $DISK ..." >&2
dd if=/dev/zero of="$DISK/disk.img" bs=1M count=$((file_bytes >> 20)) oflag=direct \
	conv=fsync status=none

"$VHOSTD" --log-level warn \
	--blk "id=null,backend=null,size=$null_bytes,socket=$SOCKS/vhostd-null.sock,num-queues=$QUEUES$VHOSTD_ARGS" \
	--blk "id=file,path=$DISK/disk.img,socket=$SOCKS/vhostd-file.sock,num-queues=$QUEUES,cache=none$VHOSTD_ARGS" &
PIDS+=($!)
qsd_iothread=()
qsd_exp_opts=""
if [ "$QSD_IOTHREAD" = 1 ]; then
	qsd_iothread=(--object "iothread,id=io0")
	qsd_exp_opts=",iothread=io0"
fi
"$QSD" "${qsd_iothread[@]}" \
	--blockdev "driver=null-co,node-name=null0,size=$null_bytes,read-zeroes=on" \
	--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$SOCKS/qsd-null.sock,node-name=null0,writable=on,num-queues=$QUEUES$qsd_exp_opts" \
	--blockdev "driver=file,node-name=file0,filename=$DISK/disk.img,cache.direct=on,aio=io_uring,locking=off" \
	--blockdev "driver=raw,node-name=raw0,file=file0" \
	--export "type=vhost-user-blk,id=exp1,addr.type=unix,addr.path=$SOCKS/qsd-file.sock,node-name=raw0,writable=on,num-queues=$QUEUES$qsd_exp_opts" &
PIDS+=($!)
for s in vhostd-null vhostd-file qsd-null qsd-file; do
	wait_for_socket "$SOCKS/$s.sock"
done

# --- the runs ----------------------------------------------------------------

RESULTS=$SOCKS/results
: >"$RESULTS"

run() { # daemon backend workload-index round
	local daemon=$1 backend=$2 w=${WORKLOADS[$3]} round=$4 name rw bs qd out
	IFS=: read -r name rw bs qd <<<"$w"
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
	if out=$("$BENCH" --socket "$SOCKS/$daemon-$backend.sock" --rw "$rw" --bs "$bs" \
		--iodepth "$qd" --queues "$QUEUES" --time "$SECS" --json $BENCH_ARGS 2>&1); then
		printf '%s\t%s\t%s\t%s\t%s\n' "$backend" "$name" "$daemon" "$round" "$out" >>"$RESULTS"
		printf '  round %s  %-5s %-18s %-7s %s IOPS\n' "$round" "$backend" "$name" "$daemon" \
			"$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["iops"]))' "$out")" >&2
	else
		printf '%s\t%s\t%s\t%s\tFAIL\n' "$backend" "$name" "$daemon" "$round" >>"$RESULTS"
		echo "  round $round $backend $name $daemon: FAILED: $out" >&2
	fi
}

echo "blk.sh: $ROUNDS rounds x ${#WORKLOADS[@]} workloads x 4 targets x ${SECS}s" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order=(vhostd qsd); else order=(qsd vhostd); fi
	for ((w = 0; w < ${#WORKLOADS[@]}; w++)); do
		for backend in null file; do
			for daemon in "${order[@]}"; do
				run "$daemon" "$backend" "$w" "$round"
			done
		done
	done
done

# --- the table ---------------------------------------------------------------

python3 - "$RESULTS" "$ROUNDS" "$SECS" "$QUEUES" "$NULL_SIZE" "$FILE_SIZE" "$FILE_DIR" \
	"$VHOSTD_ARGS" "$QSD_IOTHREAD" <<'EOF'
import json, statistics, sys
path, rounds, secs, queues, null_size, file_size, file_dir, vargs, qiot = sys.argv[1:]
runs = {}
order = []
for line in open(path):
    backend, name, daemon, rnd, out = line.rstrip("\n").split("\t", 4)
    key = (backend, name)
    if key not in order:
        order.append(key)
    runs.setdefault(key, {}).setdefault(daemon, {})[rnd] = None if out == "FAIL" else json.loads(out)

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def ok(by):
    return [r for r in by.values() if r]

def stat(by, get, fmt):
    xs = [get(r) for r in ok(by)]
    return fmt.format(med(xs)) if xs else "FAIL"

print(f"vhost-bench, {queues} queue(s), {secs} s per run, {rounds} rounds interleaved; "
      "medians over rounds")
print(f"  null: vhostd backend=null,size={null_size}")
print(f"        vs qemu-storage-daemon null-co, size={null_size}, read-zeroes=on")
print(f"  file: the same {file_size} image in {file_dir}, O_DIRECT on both: vhostd cache=none,")
print("        vs qemu-storage-daemon cache.direct=on,aio=io_uring")
print(f"  vhostd extra options: '{vargs}'; qsd exports in "
      + ("an IOThread (polls)" if qiot == "1" else "the main loop (no polling)"))
print()
fmt = "{:<7} {:<18} {:>11} {:>11} {:>6} {:>12}  {:>11} {:>11} {:>12} {:>12}"
print(fmt.format("backend", "workload", "vhostd IOPS", "qsd IOPS", "ratio", "(rounds)",
                 "vhostd p99", "qsd p99", "kicks/req", "calls/req"))
print(fmt.format("", "", "", "", "", "", "us", "us", "vhostd/qsd", "vhostd/qsd"))
for key in order:
    v = runs[key].get("vhostd", {})
    q = runs[key].get("qsd", {})
    vi = [r["iops"] for r in ok(v)]
    qi = [r["iops"] for r in ok(q)]
    per = [v[r]["iops"] / q[r]["iops"] for r in v if v.get(r) and q.get(r) and q[r]["iops"]]
    ratio = f"{med(vi) / med(qi):.2f}x" if vi and qi and med(qi) else "-"
    spread = f"{min(per):.2f}..{max(per):.2f}" if per else "-"
    kicks = lambda r: r["kicks-per-request"]
    calls = lambda r: r["calls-per-request"]
    p99 = lambda r: r["latency-us"]["p99"]
    print(fmt.format(key[0], key[1], stat(v, lambda r: r["iops"], "{:.0f}"),
                     stat(q, lambda r: r["iops"], "{:.0f}"), ratio, spread,
                     stat(v, p99, "{:.0f}"), stat(q, p99, "{:.0f}"),
                     stat(v, kicks, "{:.3f}") + "/" + stat(q, kicks, "{:.3f}"),
                     stat(v, calls, "{:.3f}") + "/" + stat(q, calls, "{:.3f}")))
    fails = sum(1 for r in list(v.values()) + list(q.values()) if r is None)
    if fails:
        print(f"        ({fails} failed run(s) left out)")
print()
print("ratio = vhostd / qemu-storage-daemon median IOPS (above 1: vhostd faster);")
print("kicks/req and calls/req: vhostd / qsd, notifications per request.")
EOF
exit 0

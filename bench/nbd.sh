#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/nbd.sh - the NBD back-end against qemu-storage-daemon's NBD client,
# both in front of the same nbdkit memory export, side by side in one run:
# vhost-bench 4K randread (QD32 by default) on vhostd backend=nbd and on
# QSD --blockdev driver=nbd, ROUNDS rounds alternating which goes first,
# medians and vhostd/QSD ratios.  With FIO=1 (and build/vhostd-fio.so)
# each round also runs the same job through fio's vhostd engine.
#
# Knobs: BUILD (build), ROUNDS (3), SECS (5), IODEPTH (32), QUEUES (1),
# SIZE (1G), FIO (1 when the engine is built), VHOSTD_ARGS (extra --blk
# options, e.g. ",poll-us=0").
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
IODEPTH=${IODEPTH:-32}
QUEUES=${QUEUES:-1}
SIZE=${SIZE:-1G}
VHOSTD_ARGS=${VHOSTD_ARGS:-}
FIO_SO=$BUILD/tools/fio/vhostd-fio.so
FIO=${FIO:-$([ -f "$FIO_SO" ] && echo 1 || echo 0)}
for p in "$BUILD/vhostd" "$BUILD/vhost-bench"; do
	[ -x "$p" ] || { echo "nbd.sh: $p not built (make build)" >&2; exit 1; }
done
for c in nbdkit qemu-storage-daemon python3; do
	command -v "$c" >/dev/null || { echo "nbd.sh: $c not installed (scripts/deps.sh)" >&2; exit 1; }
done

S=$(mktemp -d /tmp/vhostd-bench-nbd.XXXXXX)
# shellcheck source=bench/procs.sh
. "$(dirname "$0")/procs.sh"
CLEANUP_PATHS+=("$S")

wait_for_socket() {
	for ((i = 0; i < 100; i++)); do [ -S "$1" ] && return 0; sleep 0.1; done
	echo "nbd.sh: $1 did not appear" >&2
	exit 1
}

nbdkit -f --unix "$S/nbd.sock" memory "$SIZE" &
PIDS+=($!)
wait_for_socket "$S/nbd.sock"
"$BUILD/vhostd" --log-level warn \
	--blk "id=nbd,backend=nbd,uri=nbd+unix:///?socket=$S/nbd.sock,socket=$S/vhostd.sock,num-queues=$QUEUES$VHOSTD_ARGS" &
VHOSTD_PID=$!
PIDS+=("$VHOSTD_PID")
qemu-storage-daemon \
	--blockdev "driver=nbd,node-name=nbd0,server.type=unix,server.path=$S/nbd.sock" \
	--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$S/qsd.sock,node-name=nbd0,writable=on,num-queues=$QUEUES" &
QSD_PID=$!
PIDS+=("$QSD_PID")
wait_for_socket "$S/vhostd.sock"
wait_for_socket "$S/qsd.sock"
# Not prefilled: unwritten pages of nbdkit's sparse memory read as zeroes on both sides.
: >"$S/results"
run() { # daemon round
	local pid=$VHOSTD_PID out
	[ "$1" = qsd ] && pid=$QSD_PID
	out=$("$BUILD/vhost-bench" --socket "$S/$1.sock" --rw randread --bs 4k --iodepth "$IODEPTH" \
		--queues "$QUEUES" --time "$SECS" --json --cpu-pid "$pid")
	printf 'vhost-bench\t%s\t%s\t%s\n' "$1" "$2" "$out" >>"$S/results"
	if [ "$FIO" = 1 ]; then
		out=$(fio --thread --ioengine="external:$FIO_SO" --socket="$S/$1.sock" --filename=x \
			--name=j --rw=randread --bs=4k --iodepth="$IODEPTH" --numjobs="$QUEUES" \
			--group_reporting --time_based --runtime="$SECS" --output-format=json 2>/dev/null)
		printf 'fio\t%s\t%s\t%s\n' "$1" "$2" "$(tr -d '\n' <<<"$out")" >>"$S/results"
	fi
	echo "  round $2 $1 done" >&2
}
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then run vhostd "$r"; run qsd "$r"; else run qsd "$r"; run vhostd "$r"; fi
done

python3 - "$S/results" "$ROUNDS" "$SECS" "$IODEPTH" "$QUEUES" "$SIZE" <<'PY'
import json, statistics, sys
path, rounds, secs, qd, queues, size = sys.argv[1:]
res = {}
for line in open(path):
    tool, daemon, rnd, out = line.rstrip("\n").split("\t", 3)
    j = json.loads(out)
    if tool == "fio":
        rd = j["jobs"][0]["read"]
        iops, p50, p99 = rd["iops"], rd["clat_ns"]["percentile"]["50.000000"] / 1e3, \
            rd["clat_ns"]["percentile"]["99.000000"] / 1e3
    else:
        iops, p50, p99 = j["iops"], j["latency-us"]["p50"], j["latency-us"]["p99"]
    res.setdefault((tool, daemon), []).append((iops, p50, p99))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"4K randread QD{qd}, {queues} queue(s), nbdkit memory {size} over a unix socket;")
print(f"{secs} s per run, {rounds} rounds alternating, medians.  vhostd: backend=nbd (libnbd);")
print("qsd: qemu-storage-daemon --blockdev driver=nbd (QEMU 7.2's NBD client)")
fmt = "{:<12} {:>10} {:>10} {:>6}  {:>9} {:>9} {:>6}  {:>9} {:>9} {:>6}"
print(fmt.format("driver", "vhostd", "qsd", "IOPS", "vhostd", "qsd", "p50", "vhostd", "qsd", "p99"))
print(fmt.format("", "IOPS", "IOPS", "ratio", "p50 us", "p50 us", "ratio", "p99 us", "p99 us", "ratio"))
for tool in ("vhost-bench", "fio"):
    v, q = res.get((tool, "vhostd")), res.get((tool, "qsd"))
    if not v or not q:
        continue
    row = []
    for i, f in ((0, "{:.0f}"), (1, "{:.1f}"), (2, "{:.1f}")):
        a, b = med(v, i), med(q, i)
        row += [f.format(a), f.format(b), f"{a / b:.2f}x"]
    print(fmt.format(tool, *row))
print("IOPS ratio above 1: vhostd faster; latency ratios below 1: vhostd quicker.")
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/scsi.sh - the virtio-scsi datapath against virtio-blk on the same
# vhostd: one daemon serves a --blk null disk and a --scsi controller with
# a null LUN of the same size; vhost-bench drives each (--scsi-lun 0:0 for
# the LUN: READ (16) through the request queue) with 4 KiB random reads at
# QD32 and QD1, in interrupt mode, and the table gives IOPS, mean / p99
# latency, the daemon's CPU per request and the scsi/blk IOPS ratio.
#
# Knobs (environment): BUILD (build), SECS (5), ROUNDS (3: the best round
# of each row counts), SIZE (1G), BENCH_ARGS (extra vhost-bench flags).
#
# Not here yet: guest fio in a TCG guest on vhostd-scsi against QEMU's
# built-in virtio-scsi on the same image (see the scsi-* guest cases for
# how such a guest is booted).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-1G}
VHOSTD=$BUILD/vhostd
BENCH=$BUILD/vhost-bench
[[ -x $VHOSTD && -x $BENCH ]] || { echo "bench/scsi.sh: build first (make build)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-scsi-bench.XXXXXX")
PID=
cleanup() {
	[[ -z $PID ]] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
	rm -rf "$T"
}
trap cleanup EXIT

"$VHOSTD" --log-level warn --io-threads 1 \
	--blk "id=blk0,backend=null,size=$SIZE,socket=$T/blk.sock" \
	--scsi "id=sc0,socket=$T/scsi.sock" --lun "scsi=sc0,target=0,lun=0,backend=null,size=$SIZE" \
	2>"$T/vhostd.log" &
PID=$!
for ((i = 0; i < 100; i++)); do
	[[ -S $T/blk.sock && -S $T/scsi.sock ]] && break
	sleep 0.1
done

# run TARGET QD -> "iops mean p99 cpu_us_per_request"
run() {
	local args=(--socket "$T/$1.sock" --rw randread --bs 4k --iodepth "$2" --time "$SECS"
		--cpu-pid "$PID" --json ${BENCH_ARGS:-})
	[[ $1 == scsi ]] && args+=(--scsi-lun 0:0)
	"$BENCH" "${args[@]}" | python3 -c '
import json, sys
d = json.load(sys.stdin)
lat = d["latency-us"]
print("%.0f %.1f %.1f %.2f" % (d["iops"], lat["mean"], lat["p99"],
      d.get("daemon-cpu-us-per-request", d.get("cpu-us-per-request", 0))))'
}

declare -A best
for ((r = 1; r <= ROUNDS; r++)); do
	for qd in 32 1; do
		for target in blk scsi; do
			line=$(run "$target" "$qd")
			read -r iops _ <<<"$line"
			read -r old _ <<<"${best[$target-$qd]:-0}"
			if ((${iops%.*} > ${old%.*})); then best[$target-$qd]=$line; fi
		done
	done
done

printf "%-8s %-4s %12s %10s %10s %12s\n" device QD IOPS "mean us" "p99 us" "cpu us/req"
for qd in 32 1; do
	for target in blk scsi; do
		read -r iops mean p99 cpu <<<"${best[$target-$qd]}"
		printf "%-8s %-4s %12s %10s %10s %12s\n" "$target" "$qd" "$iops" "$mean" "$p99" "$cpu"
	done
	read -r b _ <<<"${best[blk-$qd]}"
	read -r s _ <<<"${best[scsi-$qd]}"
	python3 -c "print('scsi/blk QD$qd IOPS ratio: %.2f' % ($s / $b))"
done

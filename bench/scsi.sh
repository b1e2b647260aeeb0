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
# GUEST=1 (the default) adds a guest: fio 4 KiB random reads at QD32 and
# QD1 in a TCG guest (tests/guest/lib.sh's kernel and initramfs) on a
# vhostd-scsi LUN, then on QEMU's built-in virtio-scsi-pci + scsi-hd over
# the same image (page cache on both sides), and the vhostd/QEMU ratio.
# Under TCG the guest's CPU is most of the cost: this compares whole
# stacks, not datapaths.  GUEST_IMG_SIZE (1G).
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

[[ ${GUEST:-1} == 1 ]] || exit 0
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=

# --- a TCG guest: vhostd-scsi against QEMU's virtio-scsi + scsi-hd ---
export CASE=scsi-bench BACKEND=vhostd GUEST_LOG_DIR=$T/logs
# shellcheck source=../tests/guest/lib.sh
source tests/guest/lib.sh
WORK=$T
img=$T/guest.img
truncate -s "${GUEST_IMG_SIZE:-1G}" "$img"
# Allocate it, so neither side reads holes.
dd if=/dev/zero of="$img" bs=1M count=256 conv=notrunc status=none
guest_fio() { # LABEL -> "qd32 qd1" IOPS
	GUEST_LOG=$T/logs/$1.log
	boot_guest "$PWD/bench/guest/scsi-fio.sh" >/dev/null 2>&1 || {
		echo "bench/scsi.sh: the $1 guest failed (log: $GUEST_LOG)" >&2
		echo "0 0"
		return
	}
	echo "$(guest_report FIO | awk '$1 == "qd32" { print $2 }') $(guest_report FIO | awk '$1 == "qd1" { print $2 }')"
}
SOCK=$T/g.sock
"$VHOSTD" --log-level warn --scsi "id=g0,socket=$SOCK" \
	--lun "scsi=g0,target=0,lun=0,path=$img" 2>"$T/vhostd-guest.log" &
PID=$!
for ((i = 0; i < 100; i++)); do [[ -S $SOCK ]] && break; sleep 0.1; done
GUEST_QEMU_DEVICES=(-chardev "socket,id=c0,path=$SOCK" -device "vhost-user-scsi-pci,chardev=c0,num_queues=1")
read -r v32 v1 <<<"$(guest_fio vhostd)"
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=
# shellcheck disable=SC2054 # QEMU's commas
GUEST_QEMU_DEVICES=(-drive "file=$img,if=none,id=d0,format=raw,cache=writeback,aio=threads"
	-device virtio-scsi-pci,id=scsi0,num_queues=1 -device "scsi-hd,drive=d0,bus=scsi0.0")
read -r q32 q1 <<<"$(guest_fio qemu)"
echo
printf "%-28s %12s %12s\n" "guest fio randread 4k (TCG)" "QD32 IOPS" "QD1 IOPS"
printf "%-28s %12s %12s\n" "vhostd vhost-user-scsi" "$v32" "$v1"
printf "%-28s %12s %12s\n" "QEMU virtio-scsi + scsi-hd" "$q32" "$q1"
python3 -c "print('vhostd/QEMU IOPS ratio: QD32 %.2f, QD1 %.2f' % ($v32 / max($q32, 1), $v1 / max($q1, 1)))"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/net-guest.sh - a TCG guest's iperf3 throughput (TCP, two streams,
# guest -> host and host -> guest) on vhostd --net tap=IF, against QEMU's
# built-in virtio-net (-netdev tap, userspace datapath, vhost=off) on the
# same tap, side by side in one run.  Two queue pairs, mq=on, both with
# vectors=0 (QEMU 7.2 under TCG crashes with MSI-X on vhost-user-net:
# tests/guest/README.md).  The tap and the host's iperf3 server (10.0.0.1)
# live in a network namespace of their own (vhd-net-bench-PID); the whole
# run happens inside it.  Under TCG the guest's CPU is most of the cost:
# this compares whole stacks, not datapaths.  ROUNDS (2).  Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || { echo "bench/net-guest.sh: needs root (network namespaces)" >&2; exit 1; }
	NS=vhd-net-bench-$$
	ip netns add "$NS"
	trap 'ip netns del "$NS" 2>/dev/null' EXIT
	ip netns exec "$NS" ip link set lo up
	ip netns exec "$NS" ip tuntap add dev vhd-net-bt mode tap multi_queue vnet_hdr
	ip netns exec "$NS" ip addr add 10.0.0.1/24 dev vhd-net-bt
	ip netns exec "$NS" ip link set vhd-net-bt up
	ip netns exec "$NS" "$0" --inner
	exit
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/vhd-net-guest-bench.XXXXXX")
export CASE=net-bench BACKEND=vhostd GUEST_LOG_DIR=$T/logs
# shellcheck source=../tests/guest/lib.sh
source tests/guest/lib.sh
IPERF_PID=
VPID=
inner_cleanup() {
	[[ -z $IPERF_PID ]] || kill "$IPERF_PID" 2>/dev/null || true
	[[ -z $VPID ]] || { kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null || true; }
	rm -rf "$T"
}
trap inner_cleanup EXIT
iperf3 -s -B 10.0.0.1 >"$T/iperf3.log" 2>&1 &
IPERF_PID=$!

guest_iperf() { # LABEL -> "tx rx" Mbit/s
	GUEST_LOG=$T/logs/$1.log
	WORK=$T/$1
	mkdir -p "$WORK"
	boot_guest "$PWD/bench/guest/net-iperf.sh" >/dev/null 2>&1 || {
		echo "bench/net-guest.sh: the $1 guest failed (log: $GUEST_LOG)" >&2
		tail -20 "$GUEST_LOG" >&2
		exit 1
	}
	echo "$(guest_report IPERF | awk '$1 == "tx" { print $2 }') $(guest_report IPERF | awk '$1 == "rx" { print $2 }')"
}

declare -a vt vr qt qr
for ((r = 1; r <= ${ROUNDS:-2}; r++)); do
	SOCK=$T/n0.sock
	rm -f "$SOCK"
	"$VHOSTD_BIN" --log-level warn --net "id=n0,socket=$SOCK,tap=vhd-net-bt,queues=2" \
		2>"$T/vhostd.log" &
	VPID=$!
	wait_for_socket "$SOCK" "$VPID"
	GUEST_QEMU_DEVICES=(-chardev "socket,id=c0,path=$SOCK"
		-netdev "vhost-user,id=n0,chardev=c0,queues=2"
		-device "virtio-net-pci,netdev=n0,mq=on,vectors=0")
	read -r a b <<<"$(guest_iperf vhostd-$r)"
	vt+=("$a")
	vr+=("$b")
	kill "$VPID"
	wait "$VPID" || true
	VPID=

	GUEST_QEMU_DEVICES=(-netdev "tap,id=n0,ifname=vhd-net-bt,script=no,downscript=no,vhost=off,queues=2"
		-device "virtio-net-pci,netdev=n0,mq=on,vectors=0")
	read -r a b <<<"$(guest_iperf qemu-$r)"
	qt+=("$a")
	qr+=("$b")
	echo "round $r: vhostd tx ${vt[-1]} rx ${vr[-1]}, QEMU tx ${qt[-1]} rx ${qr[-1]} Mbit/s" >&2
done

best() { printf '%s\n' "$@" | sort -g | tail -1; }
printf '\n%-32s %12s %12s %8s\n' "guest iperf3, 2 streams (TCG)" "vhostd" "QEMU tap" "ratio"
for d in tx rx; do
	if [[ $d == tx ]]; then v=$(best "${vt[@]}"); q=$(best "${qt[@]}"); name="guest -> host Mbit/s"
	else v=$(best "${vr[@]}"); q=$(best "${qr[@]}"); name="host -> guest Mbit/s"; fi
	printf '%-32s %12s %12s %8s\n' "$name" "$v" "$q" \
		"$(awk -v v="$v" -v q="$q" 'BEGIN { if (q > 0) printf "%.2f", v / q; else print "-" }')"
done

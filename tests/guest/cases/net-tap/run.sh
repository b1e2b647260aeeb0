#!/usr/bin/env bash
# net-tap: a guest's virtio-net (QEMU -netdev vhost-user, mq=on, 2 queue
# pairs) on vhostd --net tap=IF.  The tap lives in a network namespace of
# its own (vhd-net-PID) with the host side's 10.0.0.1; vhostd runs inside
# it, QEMU outside.  The guest (10.0.0.2): ping both ways, 8000-byte pings
# (fragments), iperf3 TCP both ways with 4 streams over both queue pairs
# with checksum and TSO offloads (frames above the MTU crossed the tap:
# vhostd's average tx and rx frame is larger than 1514 bytes), MTU 9000
# jumbo pings through mergeable buffers, `ethtool -L eth0 combined 2`, and
# `ip link set eth0 address` (the host reaches the new MAC).
#
# The host does its half when the guest prints "REPORT STEP name": a
# watcher follows the console log.  vhostd only; split and packed.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

NS=vhd-net-$$
TAP=vhd-net-t$$
IPERF_PID=
WATCH_PID=

net_cleanup() {
	[[ -z $WATCH_PID ]] || kill "$WATCH_PID" 2>/dev/null || true
	[[ -z $IPERF_PID ]] || kill "$IPERF_PID" 2>/dev/null || true
	guest_cleanup
	ip netns del "$NS" 2>/dev/null || true
}

in_ns() { ip netns exec "$NS" "$@"; }

vhostctl_stat() { # queue field
	"$REPO/build/vhostctl" --control "$WORK/ctl.sock" stats n0 |
		awk -v q="$1" -v f="$2" '$2 == q { for (i = 3; i < NF; i++) if ($i == f) print $(i + 1) }'
}

# The host's half of each guest step, in order.
watcher() {
	local log=$1 step
	for step in host-ping mtu-9000 mac-changed; do
		until grep -aq "REPORT STEP $step" "$log" 2>/dev/null; do sleep 0.2; done
		case $step in
		host-ping) in_ns ping -c 3 -i 0.2 -W 5 10.0.0.2 >"$WORK/host-ping.out" 2>&1 ;;
		mtu-9000) in_ns ip link set "$TAP" mtu 9000 ;;
		mac-changed)
			in_ns ip neigh flush dev "$TAP"
			in_ns ping -c 3 -i 0.2 -W 5 10.0.0.2 >"$WORK/mac-ping.out" 2>&1
			in_ns ip neigh show 10.0.0.2 dev "$TAP" >"$WORK/neigh.out"
			;;
		esac
	done
}

main() {
	[[ $BACKEND == vhostd ]] || { glog "skipped: BACKEND=$BACKEND has no virtio-net"; exit 77; }
	require_backend
	[[ $(id -u) -eq 0 ]] || { glog "skipped: needs root for network namespaces and taps"; exit 77; }
	guest_workdir
	trap net_cleanup EXIT

	ip netns add "$NS"
	in_ns ip link set lo up
	in_ns ip tuntap add dev "$TAP" mode tap multi_queue vnet_hdr
	in_ns ip addr add 10.0.0.1/24 dev "$TAP"
	in_ns ip link set "$TAP" up
	# Not through in_ns: a function in the background is a subshell, and
	# its PID is not the program's.
	ip netns exec "$NS" iperf3 -s -B 10.0.0.1 >"$WORK/iperf3.log" 2>&1 &
	IPERF_PID=$!

	SOCK=$WORK/vhost.sock
	ip netns exec "$NS" "$VHOSTD_BIN" --net "id=n0,socket=$SOCK,tap=$TAP,queues=2" \
		--control "$WORK/ctl.sock" "${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"

	# vectors=0: QEMU 7.2 under TCG segfaults in msix_set_vector_notifiers
	# from vhost_net_start with any vhost-user-net back-end (DPDK's vhost
	# PMD too); without MSI-X the guest uses INTx and all is well (README).
	local dev="virtio-net-pci,netdev=n0,mq=on,vectors=0,mac=52:54:00:12:34:56"
	if ((PACKED)); then dev+=",packed=on"; fi
	GUEST_QEMU_DEVICES+=(-chardev "socket,id=c0,path=$SOCK"
		-netdev "vhost-user,id=n0,chardev=c0,queues=2" -device "$dev")
	local suffix=
	if ((PACKED)); then suffix=-packed; fi
	GUEST_LOG=${GUEST_LOG:-$GUEST_LOG_DIR/$CASE$suffix.log}
	mkdir -p "$GUEST_LOG_DIR"
	rm -f "$GUEST_LOG"
	watcher "$GUEST_LOG" &
	WATCH_PID=$!

	boot_guest "$(dirname "$0")/guest.sh"
	wait "$WATCH_PID" || true
	WATCH_PID=

	grep -q ' 0% packet loss' "$WORK/host-ping.out" || gdie "host -> guest ping: $(cat "$WORK/host-ping.out")"
	grep -q ' 0% packet loss' "$WORK/mac-ping.out" || gdie "ping after the MAC change: $(cat "$WORK/mac-ping.out")"
	grep -q '02:00:00:00:aa:02' "$WORK/neigh.out" || gdie "host sees $(cat "$WORK/neigh.out"), not the new MAC"
	guest_report QUEUE | sed "s/^/[$CASE] guest queue (pair rx tx): /" >&2

	# Offloads: frames above the MTU crossed the tap both ways (TSO / GSO).
	local q pk by
	"$REPO/build/vhostctl" --control "$WORK/ctl.sock" stats n0 | sed "s/^/[$CASE] /" >&2
	for q in tx0 tx1 rx0 rx1; do
		pk=$(vhostctl_stat $q packets)
		by=$(vhostctl_stat $q bytes)
		((pk > 0)) || gdie "vhostd queue $q carried nothing"
		[[ $(vhostctl_stat $q drop-bad-header) == 0 ]] || gdie "$q dropped bad headers"
	done
	pk=$(($(vhostctl_stat tx0 packets) + $(vhostctl_stat tx1 packets)))
	by=$(($(vhostctl_stat tx0 bytes) + $(vhostctl_stat tx1 bytes)))
	glog "guest -> tap: $pk frames, $((by / pk)) bytes on average"
	((by / pk > 1514)) || gdie "no segmentation offload: average tx frame $((by / pk)) bytes"
	pk=$(($(vhostctl_stat rx0 packets) + $(vhostctl_stat rx1 packets)))
	by=$(($(vhostctl_stat rx0 bytes) + $(vhostctl_stat rx1 bytes)))
	glog "tap -> guest: $pk frames, $((by / pk)) bytes on average"
	((by / pk > 1514)) || gdie "no receive offload: average rx frame $((by / pk)) bytes"
	stop_backend
}

main "$@"

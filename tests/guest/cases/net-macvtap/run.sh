#!/usr/bin/env bash
# net-macvtap: two guests, each on vhostd --net macvtap=IF over the same
# veth parent (macvtap mode bridge), in a network namespace of their own
# (vhd-net-PID).  The guests (10.0.1.2 and 10.0.1.3) ping each other
# through the bridge.  Then the host side shows the hairpin limit: from the
# parent's own address (10.0.1.1 on the veth) the guests cannot be reached,
# because what the parent's stack sends goes straight out of the lower
# device and never back up into its macvtaps; and the documented
# workaround works: a macvlan interface in bridge mode on the same parent,
# carrying 10.0.1.1, reaches both guests (doc/net.md).  vhostd only.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

NS=vhd-net-$$
P0=vhd-net-p$$
MV=vhd-net-m$$
PIDS_QEMU=()

net_cleanup() {
	local p
	for p in "${PIDS_QEMU[@]}"; do kill "$p" 2>/dev/null || true; done
	guest_cleanup
	ip netns del "$NS" 2>/dev/null || true
}

in_ns() { ip netns exec "$NS" "$@"; }

# One guest in the background: its own work folder (initrd), log and devices.
boot_one() { # name sock ip peer mac
	local name=$1 sock=$2 ip=$3 peer=$4 mac=$5 suffix=
	((PACKED)) && suffix=-packed
	mkdir -p "$WORK/$name/data"
	echo "$ip" >"$WORK/$name/data/ip"
	echo "$peer" >"$WORK/$name/data/peer"
	(
		WORK=$WORK/$name
		GUEST_LOG=$GUEST_LOG_DIR/$CASE$suffix-$name.log
		# The macvtap passes on only frames for its own address: the
		# guest's NIC must have it.  vectors=0: see net-tap.
		local dev="virtio-net-pci,netdev=n0,vectors=0,mac=$mac"
		((PACKED)) && dev+=",packed=on"
		GUEST_QEMU_DEVICES=(-chardev "socket,id=c0,path=$sock"
			-netdev "vhost-user,id=n0,chardev=c0" -device "$dev")
		boot_guest "$(dirname "$0")/guest.sh" "$WORK/data"
	) &
	PIDS_QEMU+=($!)
}

wait_ready() { # log
	local i p
	for ((i = 0; i < 1200; i++)); do
		grep -aq "REPORT STEP ready" "$1" 2>/dev/null && return 0
		for p in "${PIDS_QEMU[@]}"; do
			kill -0 "$p" 2>/dev/null || gdie "a guest ended before it was ready ($1)"
		done
		sleep 0.1
	done
	gdie "a guest never got ready ($1)"
}

received() { # ping output -> packets received
	sed -n 's/.* \([0-9]*\) received.*/\1/p' "$1"
}

main() {
	[[ $BACKEND == vhostd ]] || { glog "skipped: BACKEND=$BACKEND has no virtio-net"; exit 77; }
	require_backend
	[[ $(id -u) -eq 0 ]] || { glog "skipped: needs root for network namespaces"; exit 77; }
	guest_workdir
	trap net_cleanup EXIT

	ip netns add "$NS"
	in_ns ip link set lo up
	in_ns ip link add "$P0" type veth peer name "${P0}x"
	in_ns ip link set "$P0" up
	in_ns ip link set "${P0}x" up
	in_ns ip addr add 10.0.1.1/24 dev "$P0"
	in_ns ip link add link "$P0" name "${MV}a" address 52:54:00:00:01:02 type macvtap mode bridge
	in_ns ip link add link "$P0" name "${MV}b" address 52:54:00:00:01:03 type macvtap mode bridge
	in_ns ip link set "${MV}a" up
	in_ns ip link set "${MV}b" up

	SOCK=$WORK/a.sock
	ip netns exec "$NS" "$VHOSTD_BIN" --control "$WORK/ctl.sock" \
		--net "id=na,socket=$WORK/a.sock,macvtap=${MV}a,mac=52:54:00:00:01:02" \
		--net "id=nb,socket=$WORK/b.sock,macvtap=${MV}b,mac=52:54:00:00:01:03" \
		"${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$WORK/a.sock" "$BACKEND_PID"
	wait_for_socket "$WORK/b.sock" "$BACKEND_PID"

	local suffix=
	((PACKED)) && suffix=-packed
	mkdir -p "$GUEST_LOG_DIR"
	rm -f "$GUEST_LOG_DIR/$CASE$suffix"-{a,b}.log
	boot_one a "$WORK/a.sock" 10.0.1.2 10.0.1.3 52:54:00:00:01:02
	boot_one b "$WORK/b.sock" 10.0.1.3 10.0.1.2 52:54:00:00:01:03
	wait_ready "$GUEST_LOG_DIR/$CASE$suffix-a.log"
	wait_ready "$GUEST_LOG_DIR/$CASE$suffix-b.log"
	glog "the guests reached each other through the macvtap bridge"

	# The hairpin limit: the parent's own address does not reach them.
	in_ns ping -c 2 -W 1 -I "$P0" 10.0.1.2 >"$WORK/parent.out" 2>&1 || true
	[[ $(received "$WORK/parent.out") == 0 ]] ||
		gdie "the parent reached a guest through its own macvtap: $(cat "$WORK/parent.out")"
	glog "as documented, the parent's own address cannot reach them"

	# The workaround: a macvlan (bridge mode) on the parent carries the address.
	in_ns ip addr del 10.0.1.1/24 dev "$P0"
	in_ns ip link add link "$P0" name "${MV}h" type macvlan mode bridge
	in_ns ip addr add 10.0.1.1/24 dev "${MV}h"
	in_ns ip link set "${MV}h" up
	in_ns ping -c 5 -i 0.3 -W 2 10.0.1.2 >"$WORK/a.out" 2>&1 || true
	in_ns ping -c 5 -i 0.3 -W 2 10.0.1.3 >"$WORK/b.out" 2>&1 || true
	(($(received "$WORK/a.out") >= 3)) || gdie "host via macvlan -> guest a: $(cat "$WORK/a.out")"
	(($(received "$WORK/b.out") >= 3)) || gdie "host via macvlan -> guest b: $(cat "$WORK/b.out")"
	glog "through a macvlan on the same parent the host reaches both"

	local p rc=0
	for p in "${PIDS_QEMU[@]}"; do wait "$p" || rc=1; done
	PIDS_QEMU=()
	((rc == 0)) || gdie "a guest failed"
	stop_backend
}

main "$@"

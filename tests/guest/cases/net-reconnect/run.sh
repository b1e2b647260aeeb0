#!/usr/bin/env bash
# net-reconnect: vhostd's virtio-net is killed with SIGKILL under traffic
# and restarted on the same socket, twice; the guest's link comes back and
# its traffic goes on, with no corrupted packet.
#
# The tap lives in a network namespace of its own (vhd-nrc-PID) with the
# host's 10.0.0.1 and a server that sends a random 4 MiB blob to each
# connection (and the test's state on the next port); vhostd
# runs inside it, QEMU outside with -chardev socket,...,reconnect=1. The
# guest (guest.sh) pings the host with a payload pattern all along and
# fetches the blob again and again, checking its sha256. Each time the
# host kills vhostd, QEMU's net/vhost-user.c sees CHR_EVENT_CLOSED, sets
# the link down and stops vhost (GET_VRING_BASE fails: a split ring's
# position is restored from the used index in guest memory); a second
# later a fresh vhostd listens on the socket, QEMU reconnects, starts
# vhost again and sets the link up. The host then waits for the guest to
# answer its own ping (the link is back) and reports how long it took.
#
# Lost packets are allowed (what was in the tap or in flight in the rings
# at the kill); a changed one is not: every fetch that completes must have
# the blob's sha256 and every echo reply the pattern (guest.sh).
#
# Packed rings: QEMU 7.2 hands a restarted back-end a stale packed-ring
# position (see doc/net.md, "Reconnect"); vhostd's net device finds its
# place from the descriptors' flags instead.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

NS=vhd-nrc-$$
TAP=vhd-nrc-t$$
SERVER_PID=
QEMU_PID=
RESTARTS=0
KILLS=${KILLS:-2}
SUFFIX=
if ((PACKED)); then SUFFIX=-packed; fi

in_ns() { ip netns exec "$NS" "$@"; }

cleanup() {
	if [[ -n $QEMU_PID ]]; then
		pkill -P "$QEMU_PID" 2>/dev/null || true
		kill "$QEMU_PID" 2>/dev/null || true
	fi
	[[ -z $SERVER_PID ]] || kill "$SERVER_PID" 2>/dev/null || true
	guest_cleanup
	ip netns del "$NS" 2>/dev/null || true
}

start_vhostd() {
	rm -f "$SOCK"
	ip netns exec "$NS" "$VHOSTD_BIN" --log-level debug \
		--net "id=n0,socket=$SOCK,tap=$TAP,queues=2" \
		--control "$WORK/ctl.sock" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"
}

keep_backend_log() {
	mv "$WORK/backend.log" "$WORK/backend.$RESTARTS.log"
	cp "$WORK/backend.$RESTARTS.log" "$GUEST_LOG_DIR/$CASE$SUFFIX.backend.$RESTARTS.log" 2>/dev/null ||
		true
}

# wait_console TEXT: until the guest printed TEXT; false if the guest ended.
wait_console() {
	while ! grep -a -q -F "$1" "$GUEST_LOG" 2>/dev/null; do
		kill -0 "$QEMU_PID" 2>/dev/null || return 1
		sleep 0.1
	done
}

# The guest answers the host's ping again: the link is up and both
# directions work through the new vhostd.
wait_link() {
	local start=${EPOCHREALTIME/./} i
	for ((i = 0; i < 60; i++)); do
		if in_ns ping -c 1 -W 1 10.0.0.2 >/dev/null 2>&1; then
			glog "restart $RESTARTS: the guest answers again after" \
				"$(((${EPOCHREALTIME/./} - start) / 1000)) ms"
			return 0
		fi
	done
	gdie "restart $RESTARTS: the guest did not answer for 60 s"
}

vhostctl_stat() { # queue field
	"$REPO/build/vhostctl" --control "$WORK/ctl.sock" stats n0 |
		awk -v q="$1" -v f="$2" '$2 == q { for (i = 3; i < NF; i++) if ($i == f) print $(i + 1) }'
}

main() {
	[[ $BACKEND == vhostd ]] || { glog "skipped: BACKEND=$BACKEND has no virtio-net"; exit 77; }
	require_backend
	[[ $(id -u) -eq 0 ]] || { glog "skipped: needs root for network namespaces and taps"; exit 77; }
	guest_workdir
	trap cleanup EXIT

	local data=$WORK/data www=$WORK/www port rc=0 k
	mkdir "$data" "$www"
	head -c $((4 << 20)) /dev/urandom >"$www/blob"
	echo "$(sha256sum "$www/blob" | cut -d' ' -f1) $((4 << 20))" >"$data/blob.sha256"
	echo running >"$www/state"
	port=$(python3 -c 'import random; print(random.randint(20000, 40000))')
	echo "$port" >"$data/port"

	ip netns add "$NS"
	in_ns ip link set lo up
	in_ns ip tuntap add dev "$TAP" mode tap multi_queue vnet_hdr
	in_ns ip addr add 10.0.0.1/24 dev "$TAP"
	in_ns ip link set "$TAP" up
	ip netns exec "$NS" python3 "$(dirname "$0")/server.py" "$www" "$port" \
		>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!

	SOCK=$WORK/vhost.sock
	start_vhostd
	# vectors=0: see net-tap/run.sh (QEMU 7.2 under TCG and MSI-X).
	local dev="virtio-net-pci,netdev=n0,mq=on,vectors=0,mac=52:54:00:12:34:56"
	if ((PACKED)); then dev+=",packed=on"; fi
	GUEST_QEMU_DEVICES+=(-chardev "socket,id=c0,path=$SOCK,reconnect=1"
		-netdev "vhost-user,id=n0,chardev=c0,queues=2" -device "$dev")
	GUEST_LOG=${GUEST_LOG:-$GUEST_LOG_DIR/$CASE$SUFFIX.log}
	mkdir -p "$GUEST_LOG_DIR"
	rm -f "$GUEST_LOG"
	boot_guest "$(dirname "$0")/guest.sh" "$data" &
	QEMU_PID=$!

	wait_console "REPORT STEP ready" || gdie "the guest ended before its traffic started"
	for ((k = 0; k < KILLS; k++)); do
		sleep 3	# traffic through this back-end first
		glog "killing vhostd (pid $BACKEND_PID) with SIGKILL under traffic"
		kill -KILL "$BACKEND_PID"
		wait "$BACKEND_PID" 2>/dev/null || true
		BACKEND_PID=
		keep_backend_log
		sleep 1
		RESTARTS=$((RESTARTS + 1))
		start_vhostd
		glog "vhostd restarted (pid $BACKEND_PID)"
		wait_link
	done
	sleep 2	# traffic through the last back-end
	echo "done" >"$www/state"
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=
	((rc == 0)) || gdie "the guest failed (after $RESTARTS restarts)"
	glog "guest: fetches (good failed) $(guest_report FETCHES), $(guest_report PING)"

	local i log
	for ((i = 1; i <= RESTARTS; i++)); do
		log=$WORK/backend.$i.log
		[[ $i == "$RESTARTS" ]] && log=$WORK/backend.log
		grep -q 'front-end connected' "$log" || gdie "vhostd $i: QEMU did not reconnect"
		! grep -q 'cannot check the packed ring' "$log" ||
			gdie "vhostd $i: $(grep -m1 'cannot check the packed ring' "$log")"
		# QEMU 7.2 passed the stale base of the session's start: the
		# ring itself must have told vhostd where to resume.
		if ((PACKED)); then
			grep -q 'the packed ring shows position' "$log" ||
				gdie "vhostd $i resumed no packed ring from its descriptors"
			grep 'the packed ring shows position' "$log" | sed "s/^/[$CASE] vhostd $i: /" >&2
		fi
		glog "vhostd $i started rings at:" \
			"$(sed -n 's/.*:\(q[0-9]*\): started (size [0-9]*, base \(0x[0-9a-f]*\|0\)).*/\1=\2/p' "$log" |
				tr '\n' ' ')"
	done
	"$REPO/build/vhostctl" --control "$WORK/ctl.sock" stats n0 | sed "s/^/[$CASE] /" >&2
	local q
	for q in tx0 rx0; do
		(($(vhostctl_stat $q packets) > 0)) || gdie "the last vhostd's queue $q carried nothing"
	done
	stop_backend
}

main "$@"

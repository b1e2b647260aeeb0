#!/usr/bin/env bash
# net-migrate: live migration of a guest whose virtio-net is served by
# vhostd, to a second QEMU on a second vhostd on the same host.
#
# A network namespace (vhd-nmg-PID) holds a bridge with the host's
# 10.0.0.1 and two taps, one per vhostd: A's and B's. QEMU A boots the
# guest on vhostd A; QEMU B waits with -incoming on vhostd B. The guest
# runs net-reconnect's guest.sh: a stream of pings with a payload pattern
# (iputils checks every reply's bytes) and, over and over, a 4 MiB TCP
# fetch from the host whose sha256 it checks. Once traffic runs the host
# migrates A to B over TCP (HMP "migrate"); vhostd A marks every rx buffer
# it fills in the dirty log (virtq_fill), so pages written while RAM was
# being copied are sent again, and a fetch in flight across the move must
# still check out. The host then waits for the guest to answer its ping
# through tap B and tells the guest (the state port) that it has moved;
# three more good fetches end the guest.
#
# This run cannot prove the dirty log matters for net: with vhostd A
# started with VHOSTD_TEST_BREAK_DIRTY_LOG=1 it passes all the same, since
# a Linux guest writes to every mergeable rx page itself when it builds
# the skb (the page is dirtied by its CPU and sent again anyway).
# net-device's run_dirtylog checks the log bits of rx buffers directly,
# and fails with the switch.
#
# The guest has guest_announce=off, so after the move QEMU B asks vhostd B
# to announce the guest (VHOST_USER_SEND_RARP): a RARP frame with the
# guest's MAC must come out of tap B (tcpdump), which moves the bridge's
# forwarding entry for the MAC to tap B before the guest sends anything.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
NS=vhd-nmg-$$
MAC=52:54:00:12:34:57
SUFFIX=
if ((PACKED)); then SUFFIX=-packed; fi
PIDS=()
SERVER_PID=

in_ns() { ip netns exec "$NS" "$@"; }

stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
}

cleanup() {
	stop_all
	[[ -z $SERVER_PID ]] || kill "$SERVER_PID" 2>/dev/null || true
	guest_cleanup
	ip netns del "$NS" 2>/dev/null || true
}

# start_vhostd NAME TAP: vhostd in the namespace on $WORK/NAME.sock.
start_vhostd() {
	ip netns exec "$NS" "$VHOSTD_BIN" --log-level debug \
		--net "id=n0,socket=$WORK/$1.sock,tap=$2,queues=2" \
		--control "$WORK/$1.ctl" >"$WORK/vhostd-$1.log" 2>&1 &
	PIDS+=($!)
	wait_for_socket "$WORK/$1.sock" "$!"
}

# qemu_cmd SOCK MONITOR: the guest's QEMU command line (as boot_guest's).
qemu_cmd() {
	# vectors=0: see net-tap/run.sh (QEMU 7.2 under TCG and MSI-X).
	local dev="virtio-net-pci,netdev=n0,mq=on,vectors=0,mac=$MAC,guest_announce=off"
	if ((PACKED)); then dev+=",packed=on"; fi
	# shellcheck disable=SC2054
	QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024
		-object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem
		-nodefaults -no-user-config -display none -serial stdio -no-reboot
		-kernel "$GUEST_CACHE/vmlinuz" -initrd "$WORK/initrd"
		-append "console=ttyS0 quiet panic=-1 guest.packed=$PACKED"
		-chardev "socket,id=c0,path=$1" -netdev "vhost-user,id=n0,chardev=c0,queues=2"
		-device "$dev" -monitor "unix:$2,server,nowait")
}

hmp() { python3 "$HERE/../blk-migrate/hmp.py" "$@"; }

# wait_console LOG TEXT PID: until LOG shows TEXT; false if PID ended.
wait_console() {
	while ! grep -a -q -F "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.2
	done
}

main() {
	[[ $BACKEND == vhostd ]] || { glog "skipped: BACKEND=$BACKEND has no virtio-net"; exit 77; }
	require_backend
	[[ $(id -u) -eq 0 ]] || { glog "skipped: needs root for network namespaces and taps"; exit 77; }
	command -v tcpdump >/dev/null || gdie "no tcpdump (scripts/deps.sh installs it)"
	guest_workdir
	trap cleanup EXIT

	local data=$WORK/data www=$WORK/www port qa qb status="" i start rc=0 t
	mkdir "$data" "$www"
	head -c $((4 << 20)) /dev/urandom >"$www/blob"
	echo "$(sha256sum "$www/blob" | cut -d' ' -f1) $((4 << 20))" >"$data/blob.sha256"
	echo running >"$www/state"
	port=$(python3 -c 'import random; print(random.randint(20000, 40000))')
	echo "$port" >"$data/port"
	"$GUEST_DIR/build-initramfs.sh" -o "$WORK/initrd" "$HERE/../net-reconnect/guest.sh" "$data"

	ip netns add "$NS"
	in_ns ip link set lo up
	in_ns ip link add br0 type bridge
	for t in tapA tapB; do
		in_ns ip tuntap add dev "$t" mode tap multi_queue vnet_hdr
		in_ns ip link set "$t" master br0
		in_ns ip link set "$t" up
	done
	in_ns ip addr add 10.0.0.1/24 dev br0
	in_ns ip link set br0 up
	ip netns exec "$NS" python3 "$HERE/../net-reconnect/server.py" "$www" "$port" \
		>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	ip netns exec "$NS" tcpdump -i tapB -n -e -l 'ether proto 0x8035' \
		>"$WORK/rarp.txt" 2>"$WORK/tcpdump.log" &
	PIDS+=($!)

	start_vhostd A tapA
	start_vhostd B tapB
	LOG_A=$GUEST_LOG_DIR/$CASE$SUFFIX.A.log
	LOG_B=$GUEST_LOG_DIR/$CASE$SUFFIX.B.log
	# shellcheck disable=SC2034 # lib.sh's guest_report reads it
	GUEST_LOG=$LOG_B
	mkdir -p "$GUEST_LOG_DIR"
	qemu_cmd "$WORK/B.sock" "$WORK/mon-b.sock"
	timeout -k 10 "$GUEST_TIMEOUT" "${QEMU[@]}" -incoming "tcp:127.0.0.1:$((port + 2))" \
		</dev/null >"$LOG_B" 2>&1 &
	qb=$!
	PIDS+=("$qb")
	qemu_cmd "$WORK/A.sock" "$WORK/mon-a.sock"
	timeout -k 10 "$GUEST_TIMEOUT" "${QEMU[@]}" </dev/null >"$LOG_A" 2>&1 &
	qa=$!
	PIDS+=("$qa")
	glog "guest booting on A (log $LOG_A), B waits on port $((port + 2))"

	wait_console "$LOG_A" "REPORT STEP ready" "$qa" || gdie "the guest on A ended before its traffic started"
	sleep 2	# a fetch or two on A, then one in flight across the move
	start=${EPOCHREALTIME/./}
	hmp "$WORK/mon-a.sock" "migrate_set_parameter max-bandwidth 1G" \
		"migrate -d tcp:127.0.0.1:$((port + 2))" >/dev/null
	for ((i = 0; i < 600; i++)); do
		status=$(hmp "$WORK/mon-a.sock" "info migrate" | sed -n 's/^Migration status: //p')
		[[ $status == completed || $status == failed || $status == cancelled ]] && break
		sleep 0.1
	done
	[[ $status == completed ]] || gdie "migration ended as '${status:-nothing}'"
	glog "migration completed in $(((${EPOCHREALTIME/./} - start) / 1000)) ms"
	hmp "$WORK/mon-a.sock" "info migrate" | grep -E 'total time|downtime|transferred ram' |
		sed "s/^/[$CASE] /" >&2 || true
	hmp "$WORK/mon-a.sock" quit >/dev/null 2>&1 || true
	wait "$qa" 2>/dev/null || true

	start=${EPOCHREALTIME/./}
	for ((i = 0; i < 60; i++)); do
		in_ns ping -c 1 -W 1 10.0.0.2 >/dev/null 2>&1 && break
	done
	((i < 60)) || gdie "the guest on B did not answer for 60 s"
	glog "the guest answers on B $(((${EPOCHREALTIME/./} - start) / 1000)) ms after the move"
	in_ns bridge fdb show br br0 | grep -i "$MAC" | sed "s/^/[$CASE] fdb: /" >&2 || true
	echo "done" >"$www/state"
	wait "$qb" || rc=$?
	((rc == 0)) || gdie "QEMU B exited $rc"
	result=$(grep -a -o 'GUEST-RESULT: .*' "$LOG_B" | tr -d '\r' | tail -n 1) || true
	[[ $result == "GUEST-RESULT: PASS" ]] || {
		tail -n 20 "$LOG_B" | sed "s/^/[$CASE] | /" >&2
		gdie "guest on B: ${result:-no result}"
	}
	glog "guest: fetches (good failed) $(guest_report FETCHES), $(guest_report PING)"
	check_logs
	check_rarp
	stop_all
}

# Neither daemon reports an error; A was logging while RAM was copied.
check_logs() {
	local f bad
	for f in "$WORK"/vhostd-A.log "$WORK"/vhostd-B.log; do
		cp "$f" "$GUEST_LOG_DIR/$CASE$SUFFIX.$(basename "$f")" 2>/dev/null || true
		bad=$(grep -a -E 'vhostd: error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$f" |
			head -n 3) || true
		[[ -z $bad ]] || gdie "$(basename "$f") reports: $bad"
	done
	grep -q 'dirty-page log' "$WORK/vhostd-A.log" || gdie "QEMU never handed vhostd A a dirty log"
	grep -q 'logging dirty pages' "$WORK/vhostd-A.log" || gdie "vhostd A never logged a ring"
}

check_rarp() {
	local n
	sleep 1	# tcpdump's line buffer
	n=$(grep -c -i "$MAC > ff:ff:ff:ff:ff:ff.*ethertype Reverse ARP" "$WORK/rarp.txt" || true)
	sed "s/^/[$CASE] tap B: /" "$WORK/rarp.txt" | head -n 3 >&2
	((n >= 1)) || gdie "no RARP with the guest's MAC came out of tap B"
	grep -q 'announc' "$WORK/vhostd-B.log" || gdie "vhostd B logged no announce"
	glog "tap B carried $n RARP frame(s) from $MAC after the move"
}

main "$@"

#!/usr/bin/env bash
# blk-nbd: a disk on an NBD server (nbdkit's file plugin), the server
# restarted twice under guest I/O. BACKEND=vhostd serves it with
# backend=nbd; BACKEND=qsd with qemu-storage-daemon's NBD client
# (reconnect-delay=5), the reference. The guest runs PASSES fio
# write-and-verify passes (crc32c in every block, two jobs, one per vCPU
# and virtqueue); the host stops nbdkit (SIGTERM, it answers what is in
# flight with ESHUTDOWN and hangs up) while passes 1 and 2 write, waits
# DOWN_SECONDS and starts a new one on the same image. Every fio job must
# end with err=0 (no I/O error reached the guest) and verify, and after the
# last restart the guest reads the whole last pass back once more
# (verify_only). The guest also checks that flush, discard and
# write-zeroes are offered, as nbdkit's file plugin supports all three.
#
# BACKEND=qsd runs without the restarts unless QSD_NBD_RESTARTS=1: QEMU
# 7.2's NBD client hands the requests nbdkit answers with ESHUTDOWN (or
# loses with the connection) to the guest as I/O errors (seen: fio fails
# in the first restart pass, "I/O error, dev vda ... op WRITE"), whatever
# reconnect-delay says; it covers only requests issued while disconnected.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

PASSES=${PASSES:-4}
RESTART_IN_PASSES=${RESTART_IN_PASSES:-"1 2"}
if [[ $BACKEND == qsd && ${QSD_NBD_RESTARTS:-0} != 1 ]]; then RESTART_IN_PASSES=""; fi
DOWN_SECONDS=${DOWN_SECONDS:-1}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-240}
QEMU_PID=
NBD_PID=
RESTARTS=0
SUFFIX=
if ((PACKED)); then SUFFIX=-packed; fi

start_nbd() {
	rm -f "$WORK/nbd.sock"
	nbdkit -f --unix "$WORK/nbd.sock" file "$WORK/disk.img" 2>>"$WORK/nbdkit.log" &
	NBD_PID=$!
	wait_for_socket "$WORK/nbd.sock" "$NBD_PID"
}

stop_nbd() {
	[[ -n $NBD_PID ]] || return 0
	kill "$NBD_PID" 2>/dev/null || true
	wait "$NBD_PID" 2>/dev/null || true
	NBD_PID=
}

# The NBD client under test in front of $WORK/nbd.sock, on $SOCK.
start_client() {
	local uri="nbd+unix:///?socket=$WORK/nbd.sock"
	SOCK=$WORK/vhost.sock
	case $BACKEND in
	vhostd)
		"$VHOSTD_BIN" --blk "id=vda,backend=nbd,uri=$uri,socket=$SOCK,num-queues=$NUM_QUEUES" \
			>"$WORK/backend.log" 2>&1 &
		;;
	qsd)
		qemu-storage-daemon --blockdev \
			"driver=nbd,node-name=nbd0,server.type=unix,server.path=$WORK/nbd.sock,reconnect-delay=5" \
			--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$SOCK,node-name=nbd0,writable=on,num-queues=$NUM_QUEUES" \
			>"$WORK/backend.log" 2>&1 &
		;;
	esac
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"
}

wait_console() {
	while ! grep -a -q -F "$1" "$GUEST_LOG" 2>/dev/null; do
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			glog "guest ended before \"$1\""
			return 1
		fi
		sleep 0.1
	done
}

nbd_cleanup() {
	if [[ -n $QEMU_PID ]]; then
		kill "$QEMU_PID" 2>/dev/null || true
	fi
	guest_cleanup
	stop_nbd
}

main() {
	require_backend
	[[ -n $RESTART_IN_PASSES ]] || glog "no nbdkit restarts for BACKEND=$BACKEND (see run.sh)"
	command -v nbdkit >/dev/null || gdie "no nbdkit (scripts/deps.sh installs it)"
	guest_workdir
	trap nbd_cleanup EXIT
	local p rc=0
	truncate -s 96M "$WORK/disk.img"
	mkdir "$WORK/data"
	echo "$PASSES" >"$WORK/data/passes"

	start_nbd
	start_client
	blk_device "$SOCK"
	GUEST_LOG=${GUEST_LOG:-$GUEST_LOG_DIR/$CASE$SUFFIX.log}
	mkdir -p "$(dirname "$GUEST_LOG")"
	rm -f "$GUEST_LOG"
	boot_guest "$(dirname "$0")/guest.sh" "$WORK/data" &
	QEMU_PID=$!

	for p in $RESTART_IN_PASSES; do
		wait_console "pass $p writing" || break
		sleep 1 # into the middle of the pass
		glog "restarting nbdkit (pid $NBD_PID) under guest I/O"
		stop_nbd
		sleep "$DOWN_SECONDS"
		start_nbd
		RESTARTS=$((RESTARTS + 1))
	done
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=
	stop_backend || gdie "the back-end did not exit cleanly"
	cp "$WORK/backend.log" "$GUEST_LOG_DIR/$CASE$SUFFIX.backend.log" 2>/dev/null || true
	((rc == 0)) || gdie "the guest failed (after $RESTARTS nbdkit restarts)"
	((RESTARTS == $(wc -w <<<"$RESTART_IN_PASSES"))) || gdie "only $RESTARTS restarts happened"
	if [[ $BACKEND == vhostd ]]; then
		grep -q "reconnected to" "$GUEST_LOG_DIR/$CASE$SUFFIX.backend.log" ||
			gdie "vhostd never logged a reconnect"
	fi
	glog "seconds per pass: $(guest_report PASS_SECONDS | awk '{printf "%s ", $2}')"
	glog "all passes verified across $RESTARTS nbdkit restarts"
}

main "$@"

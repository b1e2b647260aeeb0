#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# inflight_scsi.sh VHOSTD INFLIGHT_SCSI_CLIENT VHOSTCTL - crash-safe
# reconnect of a virtio-scsi controller (issue 9) through our own
# front-end (QEMU 7.2's vhost-user-scsi cannot reconnect: it refuses
# reconnect=).  vhostd is killed with SIGKILL and restarted on the same
# socket; inflight_scsi_client keeps the in-flight region, reconnects and
# sends it back, as a VMM with reconnect does.  Two request queues.
#   1. burst: 24 WRITEs in flight on a slow null LUN (delay-ms=2500) and an
#      ABORT TASK waiting for one of them at the kill, 24 INQUIRYs between
#      them already answered (out of avail order): after the restart every
#      write and the TMF complete exactly once, the TMF after its write;
#   2. verify: 64 slots rewriting their blocks in generations with
#      READ/WRITE(10) and (16) on a file, killed three times at random
#      points with up to 64 commands in flight; every read-back matches
#      and the last generation of every block is on disk after the drain;
#   3. crash points (VHOSTD_TEST_CRASH): the same workload with vhostd
#      killing itself after a pop (before it is recorded), after the
#      record (before the command starts), after a used entry is written
#      (before it is published), after one that is not its batch's first
#      (packed: its used flags are out), after used->idx is published (before the
#      region is cleared), in the middle of the clear and after it (before the region's
#      used_idx): each time every block checks and nothing completes twice;
#   4. event: vhostd dies right after it wrote a hot-plug event into a
#      buffer, before publishing it: after the restart that buffer comes
#      back once, saying events were missed, the other buffers stay posted,
#      and the next hot-plug takes the next one.
# shellcheck disable=SC2317 # functions run by trap
set -u

VHOSTD=$1
CLIENT=$2
VHOSTCTL=$3

T=$(mktemp -d /tmp/vhostd-test-scsi-inflight.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

start_daemon() { # log, then vhostd args
	local log=$1 i
	shift
	"$VHOSTD" --io-threads 2 "$@" >>"$T/$log" 2>&1 &
	DPID=$!
	for ((i = 0; i < 200; i++)); do
		[ -S "$T/s.sock" ] && return 0
		kill -0 "$DPID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# A restart that finds the image still locked by the dead one (its
# io_uring is torn down asynchronously) exits at once: tried again.
restart_daemon() { # log, then vhostd args
	local n
	for ((n = 0; n < 50; n++)); do
		start_daemon "$@" && return 0
		kill -0 "$DPID" 2>/dev/null && return 1
		wait "$DPID" 2>/dev/null
		rm -f "$T/s.sock" "$T/ctl.sock"
		sleep 0.1
	done
	return 1
}

wait_flag() { # name seconds
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		[ -e "$T/$1" ] && return 0
		sleep 0.05
	done
	return 1
}

crash_restart() { # log, then vhostd args
	local log=$1
	kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	DPID=
	rm -f "$T/s.sock"
	shift
	restart_daemon "$log" "$@" && touch "$T/restarted"
}

# Wait for a daemon that kills itself (test hook): crashed=yes or no.
wait_crash() {
	local i
	crashed=no
	for ((i = 0; i < 200; i++)); do
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID" 2>/dev/null
			DPID=
			rm -f "$T/s.sock" "$T/ctl.sock"
			crashed=yes
			return
		fi
		sleep 0.05
	done
}

stop_daemon() {
	[ -n "$DPID" ] || return 0
	kill "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}

SCSI=(--scsi "id=s,socket=$T/s.sock,num-queues=2")

# --- 1. a burst in flight on a slow LUN, and a TMF waiting for it -----------
ARGS=("${SCSI[@]}" --lun "scsi=s,target=0,lun=0,backend=null,size=64M,delay-ms=2500,block-size=512")
if ! start_daemon burst.log "${ARGS[@]}"; then
	not_ok "vhostd did not start: $(cat "$T/burst.log")"
	exit 1
fi
"$CLIENT" "$T/s.sock" burst 48 "$T" 2>"$T/burst.err" &
BPID=$!
if wait_flag ready 15; then
	sleep 0.2
	crash_restart burst.log "${ARGS[@]}"
fi
wait "$BPID"
rc=$?
BPID=
check "burst: 24 writes and an ABORT TASK in flight at SIGKILL complete exactly once after the restart, the TMF after its write" \
	test "$rc" = 0
for q in 2 3; do
	grep -q "s:q$q: 12 request(s) were in flight: started again" "$T/burst.log" ||
		not_ok "burst: the new vhostd did not say it started 12 again on request queue $q: $(tail -5 "$T/burst.log")"
done
grep -q "s:q0: 1 request(s) were in flight: started again" "$T/burst.log" ||
	not_ok "burst: the new vhostd did not start the TMF again (control queue)"
[ "$rc" = 0 ] || { cat "$T/burst.err"; tail -20 "$T/burst.log"; }
stop_daemon
rm -f "$T/ready" "$T/restarted"

# --- 2. verified generations on a file, three kills ------------------------
truncate -s 64M "$T/disk.img"
ARGS=("${SCSI[@]}" --lun "scsi=s,target=0,lun=0,path=$T/disk.img,block-size=512")
if ! start_daemon verify.log "${ARGS[@]}"; then
	not_ok "vhostd did not start: $(cat "$T/verify.log")"
	exit 1
fi
"$CLIENT" "$T/s.sock" verify 4 "$T" 2>"$T/verify.err" &
BPID=$!
kills=0
if wait_flag ready 10; then
	for _ in 1 2 3; do
		sleep "0.$((RANDOM % 5 + 3))"
		crash_restart verify.log "${ARGS[@]}" || break
		kills=$((kills + 1))
		for ((i = 0; i < 100; i++)); do
			[ -e "$T/restarted" ] || break
			sleep 0.05
		done
	done
fi
wait "$BPID"
rc=$?
BPID=
check "verify: $kills SIGKILLs under verified READ/WRITE(10/16), every block checks" \
	test "$rc" = 0 -a "$kills" = 3
[ "$rc" = 0 ] || { cat "$T/verify.err"; tail -20 "$T/verify.log"; }
stop_daemon

# --- 3. chosen crash points -------------------------------------------------
for point in popped started filled filled-tail published clearing cleared; do
	rm -f "$T/ready" "$T/restarted"
	# Per batch of several, not per request: those come rarer.
	n=$((RANDOM % 300 + 300))
	[[ $point == clearing || $point == filled-tail ]] && n=$((RANDOM % 30 + 10))
	VHOSTD_TEST_CRASH="$point:$n" start_daemon "$point.log" "${ARGS[@]}" ||
		{ not_ok "$point: vhostd did not start"; continue; }
	"$CLIENT" "$T/s.sock" verify 2 "$T" 2>"$T/$point.err" &
	BPID=$!
	wait_crash
	[ "$crashed" = yes ] && restart_daemon "$point.log" "${ARGS[@]}" && touch "$T/restarted"
	wait "$BPID"
	rc=$?
	BPID=
	check "crash at \"$point\": vhostd killed itself there, every block checks after the restart" \
		test "$rc" = 0 -a "$crashed" = yes
	[ "$rc" = 0 ] || { cat "$T/$point.err"; tail -20 "$T/$point.log"; }
	stop_daemon
done
grep -q "published before the crash: not started again" "$T/published.log" ||
	not_ok "published: the restarted vhostd did not take the last batch as done"

# --- 4. an event buffer in flight at the crash -----------------------------
rm -f "$T/ready" "$T/restarted" "$T/s.sock"
truncate -s 1M "$T/hot.img" "$T/hot2.img"
CTL=(--control "$T/ctl.sock")
if VHOSTD_TEST_CRASH=filled:1 start_daemon event.log "${CTL[@]}" "${ARGS[@]}"; then
	"$CLIENT" "$T/s.sock" event 0 "$T" 2>"$T/event.err" &
	BPID=$!
	crashed=no
	if wait_flag ready 10; then
		"$VHOSTCTL" --control "$T/ctl.sock" scsi-add-lun s 0 1 "$T/hot.img" \
			>>"$T/event.log" 2>&1
		wait_crash
		[ "$crashed" = yes ] && restart_daemon event.log "${CTL[@]}" "${ARGS[@]}" &&
			touch "$T/restarted"
		# the new vhostd knows nothing of the LUN: a second hot-plug event
		wait_flag ready2 15 &&
			"$VHOSTCTL" --control "$T/ctl.sock" scsi-add-lun s 0 1 "$T/hot2.img" \
				>>"$T/event.log" 2>&1
	fi
	wait "$BPID"
	rc=$?
	BPID=
	check "event: vhostd died with a hot-plug event unpublished; its buffer came back once as events missed, the next event took the next buffer" \
		test "$rc" = 0 -a "$crashed" = yes
	grep -q "reported as missed" "$T/event.log" ||
		not_ok "event: the new vhostd did not say the event was missed"
	grep -q "s:q1: 1 request(s) were in flight: started again" "$T/event.log" ||
		not_ok "event: the new vhostd did not find the event buffer in the region"
	[ "$rc" = 0 ] || { cat "$T/event.err"; tail -20 "$T/event.log"; }
	stop_daemon
else
	not_ok "event: vhostd did not start: $(tail -3 "$T/event.log")"
fi
if grep -E "AddressSanitizer|runtime error|LeakSanitizer" "$T"/*.log; then
	not_ok "a sanitizer complained (above)"
fi
exit $failed

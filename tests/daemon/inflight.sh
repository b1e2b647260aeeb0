#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# inflight.sh VHOSTD INFLIGHT_CLIENT - crash-safe reconnect (issue 9):
# vhostd is killed with SIGKILL with requests in flight and restarted on
# the same socket; inflight_client keeps the in-flight region, reconnects
# and sends it back (SET_INFLIGHT_FD), as QEMU's reconnect=1 does.
#   1. burst: 24 writes in flight on a slow null disk (delay-ms=1500) at the
#      kill, 24 GET_IDs between them already completed (out of avail
#      order): after the restart every write completes exactly once and
#      no GET_ID again, then the ring serves new requests;
#   2. verify: 64 slots rewriting their blocks in generations on a file,
#      killed three times at random points; every read-back matches and
#      the last generation of every block is on disk after the drain;
#   3. crash points (test hook VHOSTD_TEST_CRASH): the same workload with
#      vhostd killing itself right after a pop (before it is recorded),
#      right after a pop is recorded (before its I/O starts), after a
#      used entry is written (before it is published), after one that is
#      not its batch's first (packed: its slot's used flags are out, the
#      head's are not), right before the flush (packed: the batch's end
#      recorded, not published), after used->idx is published (before the
#      batch is cleared from the region), in the middle of that clear and
#      after it (before the region's used_idx): each time every block
#      checks and nothing completes twice;
#   4. a front-end that corrupts the region (unknown version, an entry
#      marked 2; packed: 3) before reconnecting: the ring is not started,
#      with one log line, and the daemon serves the next front-end.
# INFLIGHT_PACKED=1 (meson's vhostd-inflight-packed): all of it on a packed
# ring, whose positions and wrap counters only the region knows (the
# client sends the stale base QEMU 7.2 sends).
# shellcheck disable=SC2317 # functions run by trap
set -u

VHOSTD=$1
CLIENT=$2
export INFLIGHT_PACKED=${INFLIGHT_PACKED:-0}
BAD_ENTRY=2
((INFLIGHT_PACKED)) && BAD_ENTRY=3

T=$(mktemp -d /tmp/vhostd-test-inflight.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

start_daemon() { # log, then --blk args
	local log=$1 i
	shift
	"$VHOSTD" --io-threads 1 "$@" >>"$T/$log" 2>&1 &
	DPID=$!
	for ((i = 0; i < 200; i++)); do
		[ -S "$T/a.sock" ] && return 0
		kill -0 "$DPID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# After a SIGKILL the image's lock outlives the process for a moment (the
# kernel tears its io_uring down asynchronously): a restart that finds the
# image "in use" exits at once, and is tried again, as systemd would.
restart_daemon() { # log, then --blk args
	local n
	for ((n = 0; n < 50; n++)); do
		start_daemon "$@" && return 0
		kill -0 "$DPID" 2>/dev/null && return 1
		wait "$DPID" 2>/dev/null
		rm -f "$T/a.sock"
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

# kill -9, restart on the same socket, tell the client
crash_restart() { # log, then --blk args
	local log=$1
	kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	DPID=
	rm -f "$T/a.sock"
	shift
	restart_daemon "$log" "$@" && touch "$T/restarted"
}

# --- 1. a burst in flight on a slow disk ------------------------------------
BLK=(--blk "id=a,backend=null,size=64M,delay-ms=1500,socket=$T/a.sock")
if ! start_daemon burst.log "${BLK[@]}"; then
	not_ok "vhostd did not start: $(cat "$T/burst.log")"
	exit 1
fi
"$CLIENT" "$T/a.sock" burst 48 "$T" 2>"$T/burst.err" &
BPID=$!
if wait_flag ready 10; then
	sleep 0.2
	crash_restart burst.log "${BLK[@]}"
fi
wait "$BPID"
rc=$?
BPID=
check "burst: 24 writes in flight at SIGKILL (24 done out of order) complete exactly once after the restart" \
	test "$rc" = 0
grep -q "24 request(s) were in flight: started again" "$T/burst.log" ||
	not_ok "burst: the new vhostd did not say it started 24 again: $(tail -5 "$T/burst.log")"
[ "$rc" = 0 ] || { cat "$T/burst.err"; tail -20 "$T/burst.log"; }
kill "$DPID" 2>/dev/null
wait "$DPID" 2>/dev/null
DPID=
rm -f "$T/ready"

# --- 2. verified generations on a file, three kills ------------------------
truncate -s 64M "$T/disk.img"
BLK=(--blk "id=a,path=$T/disk.img,socket=$T/a.sock")
if ! start_daemon verify.log "${BLK[@]}"; then
	not_ok "vhostd did not start: $(cat "$T/verify.log")"
	exit 1
fi
"$CLIENT" "$T/a.sock" verify 4 "$T" 2>"$T/verify.err" &
BPID=$!
kills=0
if wait_flag ready 10; then
	for _ in 1 2 3; do
		sleep "0.$((RANDOM % 5 + 3))"
		crash_restart verify.log "${BLK[@]}" || break
		kills=$((kills + 1))
		# the client takes the flag away once it reconnected
		for ((i = 0; i < 100; i++)); do
			[ -e "$T/restarted" ] || break
			sleep 0.05
		done
	done
fi
wait "$BPID"
rc=$?
BPID=
check "verify: $kills SIGKILLs under verified I/O, every block checks" \
	test "$rc" = 0 -a "$kills" = 3
[ "$rc" = 0 ] || { cat "$T/verify.err"; tail -20 "$T/verify.log"; }
kill "$DPID" 2>/dev/null
wait "$DPID" 2>/dev/null
DPID=

# --- 3. chosen crash points -------------------------------------------------
for point in popped started filled filled-tail flushing published clearing cleared; do
	rm -f "$T/ready" "$T/restarted"
	BLK=(--blk "id=a,path=$T/disk.img,socket=$T/a.sock")
	# Early enough to be reached within the client's 3 s on a loaded
	# machine (ASan, load 10 on 2 cores: 300-600 were not), late enough
	# for batches and a lap of the ring (queue 256, 3 slots a request).
	# Per batch of several, not per request: those come rarer.
	n=$((RANDOM % 150 + 150))
	[[ $point == clearing || $point == filled-tail ]] && n=$((RANDOM % 30 + 10))
	VHOSTD_TEST_CRASH="$point:$n" start_daemon "$point.log" "${BLK[@]}" ||
		{ not_ok "$point: vhostd did not start"; continue; }
	"$CLIENT" "$T/a.sock" verify 3 "$T" 2>"$T/$point.err" &
	BPID=$!
	crashed=no
	for ((i = 0; i < 200; i++)); do
		kill -0 "$DPID" 2>/dev/null || { crashed=yes; break; }
		sleep 0.05
	done
	if [ $crashed = yes ]; then
		wait "$DPID" 2>/dev/null
		DPID=
		rm -f "$T/a.sock"
		restart_daemon "$point.log" "${BLK[@]}" && touch "$T/restarted"
	fi
	wait "$BPID"
	rc=$?
	BPID=
	check "crash at \"$point\": vhostd killed itself there, every block checks after the restart" \
		test "$rc" = 0 -a $crashed = yes
	[ "$rc" = 0 ] || { cat "$T/$point.err"; tail -20 "$T/$point.log"; }
	kill "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
done
# --- 4. a front-end that corrupts the region ------------------------------
rm -f "$T/a.sock"
if start_daemon hostile.log --blk "id=a,path=$T/disk.img,socket=$T/a.sock"; then
	HOSTILE="version entry"
	((INFLIGHT_PACKED)) && HOSTILE+=" chain position"
	for what in $HOSTILE; do
		"$CLIENT" "$T/a.sock" hostile $what "$T" 2>"$T/hostile.err"
		rc=$?
		check "hostile region ($what): the ring does not start, the daemon lives" \
			test "$rc" = 0 -a -n "$(kill -0 "$DPID" 2>/dev/null && echo up)"
		[ "$rc" = 0 ] || cat "$T/hostile.err"
	done
	grep -q "device needs reset: a:q0: not started: in-flight region: version 7," "$T/hostile.log" ||
		not_ok "hostile: no log line for the bad version: $(tail -3 "$T/hostile.log")"
	grep -q "device needs reset: a:q0: not started: in-flight region: entry 3 is $BAD_ENTRY" "$T/hostile.log" ||
		not_ok "hostile: no log line for the bad entry: $(tail -3 "$T/hostile.log")"
	if ((INFLIGHT_PACKED)); then
		grep -q "device needs reset: a:q0: not started: in-flight region: chain at entry 5" "$T/hostile.log" ||
			not_ok "hostile: no log line for the looping chain: $(tail -3 "$T/hostile.log")"
		grep -q "device needs reset: a:q0: not started: in-flight region: .*used 65534/" "$T/hostile.log" ||
			not_ok "hostile: no log line for the bad position: $(tail -3 "$T/hostile.log")"
	fi
	"$CLIENT" "$T/a.sock" verify 0.5 "$T" 2>"$T/after.err"
	check "after the hostile front-ends, a new one is served" test $? = 0
	kill "$DPID"
	wait "$DPID"
	check "vhostd exits 0 after them" test $? = 0
	DPID=
else
	not_ok "hostile: vhostd did not start"
fi
grep -q "published before the crash: not started again" "$T/published.log" ||
	not_ok "published: the restarted vhostd did not take the last batch as done"
# Packed: the front-end's base was stale, the region's position was taken.
if ((INFLIGHT_PACKED)); then
	grep -q "was not published before the crash: started again" "$T/flushing.log" ||
		not_ok "flushing: the restarted vhostd did not take the last batch back"
	n=$(cat "$T"/*.log | grep -c "resuming at slot .* (the front-end said 0 wrap 1)")
	echo "# packed: $n ring starts resumed from the region's position, not the stale base"
	[ "$n" -ge 5 ] || not_ok "packed: the restarted vhostd did not resume from the region"
fi
if grep -E "AddressSanitizer|runtime error|LeakSanitizer" "$T"/*.log; then
	not_ok "a sanitizer complained (above)"
fi
exit $failed

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# stop.sh VHOSTD VHOSTCTL VHOST_BENCH CALLSWAP_CLIENT - stopping one
# device's rings never holds up the daemon (issue 12 item 5, issue 9):
#   1. a slow drain: device a (null back-end, every request takes 5 s)
#      gets 64 requests of 1 MiB and its front-end is killed; while a
#      drains, `vhostctl stats` answers, device b's verified I/O runs, and
#      a front-end on device c connects, does I/O and disconnects, each
#      within the bounds below; then a takes a new front-end that does I/O;
#   2. a stalled disk: the same with requests that never complete and
#      stop-timeout-ms=1000: the stop gives up (one log line naming the
#      count), the control socket and b keep answering, and SIGTERM still
#      exits 0 promptly;
#   2b. the same with requests that complete 1.5 s after the give-up:
#      the queue frees itself then and a serves a new front-end; and
#      2c. that on a virtio-scsi request queue;
#   2d. device-remove --force of a device whose disk never answers
#      returns at once, the socket path and the name are free, the rings
#      stop in the background within stop-timeout-ms, and b runs on;
#   3. SET_VRING_CALL under I/O, split and packed: callswap_client swaps
#      the call fd every few rounds with requests in flight and checks
#      every block it reads; a lost interrupt fails it.
# Bounds are generous (a shared 2-core machine); without the change a
# stats call in scenario 1 waits for the whole drain (about 2 s).
# shellcheck disable=SC2317 # functions run by trap and by check()
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3
CALLSWAP=$4

# Bounds, in ms: one control call, and a whole 0.5 s vhost-bench session.
STATS_BOUND=1500
SESSION_BOUND=2500

T=$(mktemp -d /tmp/vhostd-test-stop.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"
APID= # a front-end of ours besides BPID: stopped by PID too
cleanup_stop() {
	[ -n "$APID" ] && kill "$APID" 2>/dev/null
	cleanup
}
trap cleanup_stop EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ms a command takes; its output in $T/last.out, its status in $rc.
timed() {
	local s
	s=$(now_ms)
	"$@" >"$T/last.out" 2>&1
	rc=$?
	elapsed=$(($(now_ms) - s))
}

start_daemon() { # log, then device options
	local log=$1
	shift
	"$VHOSTD" --io-threads 1 --control "$T/ctl.sock" "$@" 2>"$T/$log" &
	DPID=$!
	wait_for_socket "$T/ctl.sock" 10 && wait_for_socket "$T/a.sock" 10 &&
		wait_for_socket "$T/b.sock" 10
}

# Device a's in-flight count (the 12th field of its diskstats line, or
# lines: a controller has one per LUN).
a_inflight() {
	"$VHOSTCTL" --control "$T/ctl.sock" stats a 2>/dev/null | awk '{n += $12} END {print n}'
}

# Device a's front-end (APID): many large requests (more vhost-bench
# options in $@); returns once at least 32 are in flight (n: how many).
load_a() {
	local i
	n=0
	"$BENCH" --socket "$T/a.sock" --bs 1m --iodepth 64 --time 30 "$@" >"$T/a.out" 2>&1 &
	APID=$!
	for ((i = 0; i < 100; i++)); do
		n=$(a_inflight)
		[ "${n:-0}" -ge 32 ] && break
		sleep 0.1
	done
}

# load_a, then SIGKILL with at least 32 requests in flight.
hang_up_on_a() {
	load_a "$@"
	kill -9 "$APID"
	wait "$APID" 2>/dev/null
	APID=
	echo "# a: $n requests in flight at the hang-up"
	[ "${n:-0}" -ge 32 ]
}

# `vhostctl stats` $1 times, 0.3 s apart; fails if one is slow or fails.
stats_stay_quick() {
	local i worst=0
	for ((i = 0; i < $1; i++)); do
		timed "$VHOSTCTL" --control "$T/ctl.sock" stats
		[ "$rc" = 0 ] || return 1
		((elapsed > worst)) && worst=$elapsed
		sleep 0.3
	done
	echo "# slowest stats call: $worst ms"
	((worst <= STATS_BOUND))
}

stop_daemon() { # name
	local s
	s=$(now_ms)
	kill "$DPID"
	wait "$DPID"
	rc=$?
	elapsed=$(($(now_ms) - s))
	DPID=
	check "$1: SIGTERM exits 0 (in $elapsed ms)" test "$rc" = 0
	check "$1: ... within 5 s" test "$elapsed" -le 5000
}

truncate -s 64M "$T/b.img"

# --- 1. a slow drain --------------------------------------------------------------

if ! start_daemon drain.log \
	--blk "id=a,backend=null,size=1G,delay-ms=5000,socket=$T/a.sock" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock" \
	--blk "id=c,backend=null,size=64M,socket=$T/c.sock" \
	--blk "id=d,backend=null,size=64M,delay-ms=2000,socket=$T/d.sock"; then
	not_ok "vhostd did not start: $(cat "$T/drain.log")"
	exit 1
fi
"$BENCH" --socket "$T/b.sock" --rw randrw --verify --size 16m --iodepth 1 --time 5 --json \
	>"$T/b.json" 2>"$T/b.err" &
BPID=$!
sleep 0.3
check "drain: a's front-end hangs up with requests in flight" hang_up_on_a
check "drain: stats answer within $STATS_BOUND ms while a drains" stats_stay_quick 5
timed "$BENCH" --socket "$T/c.sock" --time 0.5
check "drain: a front-end on c connects, runs and leaves (${elapsed} ms, bound $SESSION_BOUND)" \
	test "$rc" = 0 -a "$elapsed" -le "$SESSION_BOUND"
wait "$BPID"
rc=$?
BPID=
check "drain: b's verified I/O ran clean throughout" test "$rc" = 0
check "drain: b's slowest request took under 1 s" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("# b: %d ios, max latency %.0f us" % (r["ios"], r["latency-us"]["max"]))
sys.exit(r["ios"] < 50 or r["latency-us"]["max"] > 1e6)' "$T/b.json"
# The drain ends 5 s after the requests began; a then serves a new front-end.
timed "$BENCH" --socket "$T/a.sock" --iodepth 4 --time 1 --json
check "drain: a takes a new front-end that does I/O" \
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["ios"] < 1)' "$T/last.out"
# GET_VRING_BASE with 32 requests of 2 s in flight: parked until they are
# done, answered with the base after them; the loop serves the rest meanwhile.
wait_for_socket "$T/d.sock" 10
"$CALLSWAP" "$T/d.sock" stop 1500 >"$T/d.out" 2>&1 &
APID=$!
sleep 0.3
check "drain: stats answer within $STATS_BOUND ms while GET_VRING_BASE waits" stats_stay_quick 4
wait "$APID"
rc=$?
APID=
sed 's/^/# /' "$T/d.out"
check "drain: GET_VRING_BASE answers after the drain, counting every request" test "$rc" = 0
check "drain: no stop was given up on" test "$(grep -c "gave up" "$T/drain.log")" = 0
stop_daemon drain
grep -E "error|warn" "$T/drain.log" | sed 's/^/# /'

# --- 2. a disk that never answers ---------------------------------------------------

if ! start_daemon stall.log \
	--blk "id=a,backend=null,size=1G,delay-ms=3600000,stop-timeout-ms=1000,socket=$T/a.sock" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock"; then
	not_ok "vhostd did not start: $(cat "$T/stall.log")"
	exit 1
fi
check "stall: a's front-end hangs up with requests in flight" hang_up_on_a
check "stall: stats answer within $STATS_BOUND ms meanwhile" stats_stay_quick 6
check "stall: the stop gave up after 1000 ms, naming the requests" \
	grep -q "a:q0: stop gave up after 1000 ms on [0-9]* request(s)" "$T/stall.log"
timed "$BENCH" --socket "$T/b.sock" --rw randrw --verify --size 16m --iodepth 4 --time 0.5
check "stall: b connects and verifies I/O (${elapsed} ms)" \
	test "$rc" = 0 -a "$elapsed" -le "$SESSION_BOUND"
check "stall: vhostd is alive" kill -0 "$DPID"
stop_daemon stall
check "stall: the exit says what never completed" \
	grep -q "exiting with 1 stopped queue(s) whose requests never completed" "$T/stall.log"
grep -E "error|warn" "$T/stall.log" | sed 's/^/# /'

# --- 2b. a disk that answers after the stop gave up -----------------------------------

# The orphan's requests complete 1.5 s after the give-up: their memory
# was kept (ASan would see a use after free), the queue frees itself, and
# a can start its queue for a new front-end again.
if ! start_daemon late.log \
	--blk "id=a,backend=null,size=1G,delay-ms=2500,stop-timeout-ms=1000,socket=$T/a.sock" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock"; then
	not_ok "vhostd did not start: $(cat "$T/late.log")"
	exit 1
fi
check "late: a's front-end hangs up with requests in flight" hang_up_on_a
for ((i = 0; i < 50; i++)); do
	grep -q "have completed; freed" "$T/late.log" && break
	sleep 0.1
done
check "late: the stop gave up" grep -q "a:q0: stop gave up after 1000 ms" "$T/late.log"
check "late: the abandoned requests completed and were freed" \
	grep -q "a:q0: the requests it was stopped without have completed; freed" "$T/late.log"
timed "$BENCH" --socket "$T/a.sock" --iodepth 4 --time 1 --json
check "late: a takes a new front-end that does I/O" \
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["ios"] < 1)' "$T/last.out"
stop_daemon late

# --- 2c. the same on a virtio-scsi request queue ------------------------------------------

if ! start_daemon scsi.log \
	--scsi "id=a,socket=$T/a.sock,stop-timeout-ms=1000" \
	--lun "scsi=a,target=0,lun=0,backend=null,size=1G,delay-ms=2500" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock"; then
	not_ok "vhostd did not start: $(cat "$T/scsi.log")"
	exit 1
fi
check "scsi: a's front-end hangs up with commands in flight" hang_up_on_a --scsi-lun 0:0
check "scsi: stats answer within $STATS_BOUND ms meanwhile" stats_stay_quick 4
for ((i = 0; i < 50; i++)); do
	grep -q "have completed; freed" "$T/scsi.log" && break
	sleep 0.1
done
check "scsi: the request queue's stop gave up after 1000 ms" \
	grep -q "a:q2: stop gave up after 1000 ms on [0-9]* request(s)" "$T/scsi.log"
check "scsi: the abandoned commands completed and were freed" \
	grep -q "the requests it was stopped without have completed; freed" "$T/scsi.log"
timed "$BENCH" --socket "$T/a.sock" --scsi-lun 0:0 --iodepth 4 --time 1 --json
check "scsi: a takes a new front-end that does I/O" \
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["ios"] < 1)' "$T/last.out"
stop_daemon scsi

# --- 2d. a forced removal of a device whose disk never answers -----------------------------

# device-remove --force answers at once and frees the name and the socket
# path; the rings stop in the background (giving up after 3 s) while the
# control socket and b go on; a device of the same name can come back.
if ! start_daemon remove.log \
	--blk "id=a,backend=null,size=1G,delay-ms=3600000,stop-timeout-ms=3000,socket=$T/a.sock" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock"; then
	not_ok "vhostd did not start: $(cat "$T/remove.log")"
	exit 1
fi
load_a
echo "# a: $n requests in flight at the removal"
timed "$VHOSTCTL" --control "$T/ctl.sock" remove a --force
check "remove: device-remove --force of a stalled a answers within $STATS_BOUND ms ($elapsed ms)" \
	test "$rc" = 0 -a "$elapsed" -le "$STATS_BOUND"
check "remove: a's socket file is gone at once" test ! -e "$T/a.sock"
check "remove: a is out of the device list" \
	bash -c "! '$VHOSTCTL' --control '$T/ctl.sock' list | grep -qw a"
check "remove: stats answer within $STATS_BOUND ms while a's queue stops" stats_stay_quick 3
timed "$BENCH" --socket "$T/b.sock" --rw randrw --verify --size 16m --iodepth 4 --time 0.5
check "remove: b connects and verifies I/O meanwhile (${elapsed} ms)" \
	test "$rc" = 0 -a "$elapsed" -le "$SESSION_BOUND"
for ((i = 0; i < 100; i++)); do
	grep -q "a: removed (its queues are stopped)" "$T/remove.log" && break
	sleep 0.1
done
check "remove: the stop gave up after 3000 ms, naming the requests" \
	grep -q "a:q0: stop gave up after 3000 ms on [0-9]* request(s)" "$T/remove.log"
check "remove: then a was freed" grep -q "a: removed (its queues are stopped)" "$T/remove.log"
for ((i = 0; i < 50; i++)); do
	kill -0 "$APID" 2>/dev/null || break
	sleep 0.1
done
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
APID=
check "remove: a's front-end saw its connection closed" \
	grep -q "the back-end closed the connection with [0-9]* requests in flight" "$T/a.out"
timed "$VHOSTCTL" --control "$T/ctl.sock" add blk "id=a,backend=null,size=64M,socket=$T/a.sock"
check "remove: a device named a comes back on the same socket" test "$rc" = 0
timed "$BENCH" --socket "$T/a.sock" --iodepth 4 --time 0.5 --json
check "remove: the new a does I/O" \
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["ios"] < 1)' "$T/last.out"
check "remove: vhostd is alive" kill -0 "$DPID"
stop_daemon remove
grep -E "error|warn" "$T/remove.log" | sed 's/^/# /'

# --- 3. call fds swapped under I/O ------------------------------------------------------

"$VHOSTD" --blk "id=a,path=$T/b.img,socket=$T/a.sock" 2>"$T/swap.log" &
DPID=$!
wait_for_socket "$T/a.sock" 10
for layout in split packed; do
	timed "$CALLSWAP" "$T/a.sock" 2 "$layout"
	sed 's/^/# /' "$T/last.out"
	check "call fd swaps under I/O ($layout): every block verified, no interrupt lost" \
		test "$rc" = 0
done
stop_daemon swap

exit $failed

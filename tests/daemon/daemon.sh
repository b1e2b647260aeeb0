#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# daemon.sh VHOSTD VHOSTCTL VHOST_BENCH - vhostd end to end, as an operator
# sees it:
#   - bad command lines: non-zero exit (2 usage, 1 run time), exactly one
#     line on stderr, no socket left behind;
#   - the start-up line per device, `vhostctl list`, `vhostctl stats`;
#   - stats move after vhost-bench does I/O, and nothing stays in flight;
#   - vhost-bench --verify reads back what it wrote, across queues and
#     runs, and fails on a device that loses the data (backend=null);
#   - a read-only device refuses a write benchmark; reads still work;
#   - garbage on the control socket gets a JSON-RPC error and the daemon
#     keeps serving;
#   - SIGTERM during I/O: exit 0, sockets removed.
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3

T=$(mktemp -d /tmp/vhostd-test-daemon.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

# diskstats field N (1-based: 4 reads, 6 sectors read, 8 writes,
# 10 sectors written, 12 in flight) of device $1 from `vhostctl stats`.
stat_field() {
	"$VHOSTCTL" --control "$T/ctl.sock" stats "$1" | awk -v f="$2" '{ print $f }'
}

truncate -s 64M "$T/disk.img"
truncate -s 8M "$T/ro.img"
truncate -s 8M "$T/shrink.img"
mkdir "$T/adir"

# --- bad command lines -------------------------------------------------------

expect_fail() { # status description args...
	local want=$1 what=$2 rc lines
	shift 2
	"$VHOSTD" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	lines=$(wc -l <"$T/err")
	if [ "$rc" -ne "$want" ]; then
		not_ok "$what: exit $rc, want $want: $(cat "$T/err")"
	elif [ "$lines" -ne 1 ]; then
		not_ok "$what: $lines lines on stderr, want 1: $(cat "$T/err")"
	elif compgen -G "$T/*.sock" >/dev/null; then
		not_ok "$what: left a socket behind: $(ls "$T"/*.sock)"
	else
		ok "$what ($(cat "$T/err"))"
	fi
	rm -f "$T"/*.sock
}

good="id=vda,path=$T/disk.img,socket=$T/a.sock"
expect_fail 2 "unknown option" --frobnicate --blk "$good"
expect_fail 2 "no device and no --control" --log-level info
expect_fail 2 "stray argument" --blk "$good" extra
expect_fail 2 "--blk without path" --blk "id=vda,socket=$T/a.sock"
expect_fail 2 "--blk without argument" --blk
expect_fail 2 "num-queues=0" --blk "$good,num-queues=0"
expect_fail 2 "num-queues=abc" --blk "$good,num-queues=abc"
expect_fail 2 "duplicate id" --blk "$good" --blk "id=vda,path=$T/ro.img,socket=$T/b.sock"
expect_fail 2 "duplicate socket" --blk "$good" --blk "id=vdb,path=$T/ro.img,socket=$T/a.sock"
expect_fail 2 "bad log level" --log-level loud --blk "$good"
expect_fail 2 "empty --control" --control "" --blk "$good"
expect_fail 2 "--control too long" --control "$T/$(printf 'c%.0s' {1..120})" --blk "$good"
expect_fail 1 "missing image" --blk "$good" --blk "id=vdb,path=$T/nope.img,socket=$T/b.sock"
# Root opens any mode, so a directory stands in for an unreadable image.
expect_fail 1 "unreadable image" --blk "id=vdb,path=$T/adir,socket=$T/b.sock"
if [ "$(id -u)" -ne 0 ]; then
	cp "$T/ro.img" "$T/noperm.img"
	chmod 000 "$T/noperm.img"
	expect_fail 1 "image without permission" --blk "id=vdb,path=$T/noperm.img,socket=$T/b.sock"
fi
expect_fail 1 "socket folder missing" --blk "$good" \
	--blk "id=vdb,path=$T/ro.img,socket=$T/nodir/b.sock"
expect_fail 2 "same image twice" --blk "$good" --blk "id=vdb,path=$T/disk.img,socket=$T/b.sock"
touch "$T/plain.file"
expect_fail 1 "socket path is a regular file" --blk "id=vda,path=$T/disk.img,socket=$T/plain.file"
rm -f "$T/plain.file"

# A device that fails only when it starts (its image locked by another
# vhostd): the one started before it must be torn down, socket and all.
mkdir "$T/hold"
"$VHOSTD" --blk "id=hold,path=$T/ro.img,socket=$T/hold/h.sock" 2>/dev/null &
HPID=$!
wait_for_socket "$T/hold/h.sock" 10
"$VHOSTD" --blk "$good" --blk "id=vdb,path=$T/ro.img,socket=$T/b.sock" 2>"$T/err"
rc=$?
check "device failing at start: exit 1" test "$rc" = 1
check "device failing at start: one error line" test "$(grep -c 'error:' "$T/err")" = 1
check "device failing at start: first device's socket removed" test ! -e "$T/a.sock"
sed 's/^/# /' "$T/err"
# locking=off on both sides (a live migration's source and destination):
# the second daemon opens the image the first one holds.
kill "$HPID"
wait "$HPID"
"$VHOSTD" --blk "id=hold,path=$T/ro.img,socket=$T/hold/h.sock,locking=off" 2>/dev/null &
HPID=$!
wait_for_socket "$T/hold/h.sock" 10
"$VHOSTD" --blk "id=vdb,path=$T/ro.img,socket=$T/b.sock,locking=off" 2>"$T/err" &
BPID=$!
check "locking=off: a second daemon serves the same image" wait_for_socket "$T/b.sock" 10
kill "$HPID" "$BPID"
wait "$HPID" "$BPID"

expect_fail 2 "backend=null without size" --blk "id=n0,backend=null,socket=$T/a.sock"
expect_fail 2 "backend=null with a path" --blk "$good,backend=null,size=1M"

# --- virtio-scsi: --scsi and --lun -----------------------------------------------

sgood="id=sc0,socket=$T/s.sock"
expect_fail 2 "--scsi without socket" --scsi "id=sc0"
expect_fail 2 "--lun for an unknown controller" --scsi "$sgood" \
	--lun "scsi=sc1,target=0,lun=0,path=$T/disk.img"
expect_fail 2 "--lun target out of range" --scsi "$sgood" \
	--lun "scsi=sc0,target=256,lun=0,path=$T/disk.img"
expect_fail 2 "--lun bad block-size" --scsi "$sgood" \
	--lun "scsi=sc0,target=0,lun=0,path=$T/disk.img,block-size=1024"
expect_fail 2 "duplicate target/lun" --scsi "$sgood" \
	--lun "scsi=sc0,target=0,lun=0,path=$T/disk.img" \
	--lun "scsi=sc0,target=0,lun=0,backend=null,size=1M"
expect_fail 2 "--scsi and --blk with one id" --scsi "$sgood" --blk "id=sc0,path=$T/ro.img,socket=$T/b.sock"
expect_fail 2 "--scsi and --blk on one socket" --scsi "$sgood" --blk "id=vda,path=$T/ro.img,socket=$T/s.sock"
expect_fail 2 "an image for a LUN and a --blk" --blk "$good" --scsi "$sgood" \
	--lun "scsi=sc0,target=0,lun=0,path=$T/disk.img"
expect_fail 1 "missing LUN image" --scsi "$sgood" --lun "scsi=sc0,target=0,lun=0,path=$T/nope.img"

"$VHOSTD" --scsi "$sgood,num-queues=2" --lun "scsi=sc0,target=0,lun=0,backend=null,size=64M" \
	--lun "scsi=sc0,target=1,lun=3,path=$T/ro.img,readonly=on" \
	--control "$T/sctl.sock" 2>"$T/scsi.log" &
SPID=$!
if wait_for_socket "$T/sctl.sock" 10 && wait_for_socket "$T/s.sock" 10; then
	"$VHOSTCTL" --control "$T/sctl.sock" list >"$T/slist"
	sed 's/^/# /' "$T/slist"
	check "scsi: list row per LUN" \
		grep -Eq "^sc0:0:0 +scsi +64.0M +131072 +no +2 +no +$T/s.sock +\(null back-end\)\$" "$T/slist"
	check "scsi: read-only LUN row" grep -Eq "^sc0:1:3 +scsi +8.0M +16384 +yes " "$T/slist"
	"$VHOSTCTL" --control "$T/sctl.sock" stats >"$T/sstats"
	check "scsi: a diskstats line per LUN" test "$(awk '{ print $3 }' "$T/sstats" | tr '\n' ' ')" = "sc0:0:0 sc0:1:3 "
	check "scsi: stats of one LUN" test "$("$VHOSTCTL" --control "$T/sctl.sock" stats sc0:1:3 | wc -l)" = 1
	truncate -s 8M "$T/new.img"
	check "scsi: scsi-add-lun" "$VHOSTCTL" --control "$T/sctl.sock" scsi-add-lun sc0 0 1 "$T/new.img" --serial NEW
	check "scsi: scsi-add-lun twice fails" bash -c "! '$VHOSTCTL' --control '$T/sctl.sock' scsi-add-lun sc0 0 1 '$T/new.img' 2>/dev/null"
	truncate -s 16M "$T/new.img"
	check "scsi: scsi-resize" "$VHOSTCTL" --control "$T/sctl.sock" scsi-resize sc0 0 1
	check "scsi: new size listed" bash -c "'$VHOSTCTL' --control '$T/sctl.sock' list | grep -Eq '^sc0:0:1 +scsi +16.0M'"
	check "scsi: scsi-remove-lun" "$VHOSTCTL" --control "$T/sctl.sock" scsi-remove-lun sc0 0 1
	check "scsi: removed LUN gone" bash -c "! '$VHOSTCTL' --control '$T/sctl.sock' list | grep -q '^sc0:0:1 '"
else
	not_ok "scsi daemon did not start: $(cat "$T/scsi.log")"
fi
kill "$SPID"
wait "$SPID"
check "scsi: SIGTERM exit 0" test "$?" = 0
check "scsi: sockets removed" test ! -e "$T/s.sock" -a ! -e "$T/sctl.sock"

# --- the tools' own bad command lines: exit 2, before connecting -------------

tool_fail() { # description command...
	local what=$1 rc
	shift
	"$@" >/dev/null 2>"$T/err" </dev/null
	rc=$?
	if [ "$rc" -eq 2 ]; then ok "$what"; else not_ok "$what: exit $rc, want 2: $(cat "$T/err")"; fi
}
for t in nan inf 0 -1 "" " 5" 5s 0x10; do
	tool_fail "vhostctl --timeout '$t'" "$VHOSTCTL" --control "$T/none.sock" --timeout "$t" version
done
# 1e-9 s is more than 0: a wait rounded up to 1 ms, not an instant give-up.
"$VHOSTCTL" --control "$T/none.sock" --timeout 1e-9 version 2>"$T/err"
check "vhostctl --timeout 1e-9 is accepted" grep -q "cannot reach" "$T/err"
for s in " -1" "+4k" " 4k" -0 ""; do
	tool_fail "vhost-bench --size '$s'" "$BENCH" --socket "$T/none.sock" --size "$s"
done

# --- the null back-end: no image to check, two of them are not "the same" ---

"$VHOSTD" --blk "id=n0,backend=null,size=64M,socket=$T/n0.sock" \
	--blk "id=n1,backend=null,size=1M,socket=$T/n1.sock" \
	--control "$T/nctl.sock" 2>"$T/null.log" &
NPID=$!
if wait_for_socket "$T/nctl.sock" 10 && wait_for_socket "$T/n1.sock" 10; then
	check "null: start-up line" \
		grep -q "n0: serving the null back-end (131072 sectors) on $T/n0.sock" "$T/null.log"
	check "null: vhost-bench randrw" "$BENCH" --socket "$T/n0.sock" --rw randrw --time 0.5
	# Writes are dropped and reads return zeroes: the first read of a block
	# written in this run must fail verification, and say what it found.
	"$BENCH" --socket "$T/n0.sock" --rw randrw --verify --size 64k --time 0.5 \
		>"$T/nverify.out" 2>&1
	rc=$?
	sed 's/^/# /' "$T/nverify.out"
	check "null: vhost-bench --verify fails (exit 1)" test "$rc" = 1
	check "null: the mismatch is reported" grep -Eq \
		'verify: block [0-9]+ \(sector [0-9]+\).*expected tag \{magic 0x76626368 .*found \{magic 0x00000000 gen 0x00000000 lba 0 seq 0\}' \
		"$T/nverify.out"
	"$VHOSTCTL" --control "$T/nctl.sock" list >"$T/list"
	check "null: list row" \
		grep -Eq "^n0 +blk +64.0M +131072 +no +1 +[a-z]+ +$T/n0.sock +\(null back-end\)\$" "$T/list"
	"$VHOSTCTL" --control "$T/nctl.sock" stats n0 >"$T/stats"
	check "null: reads counted" test "$(awk '{ print $4 }' "$T/stats")" -gt 0
	check "null: writes counted" test "$(awk '{ print $8 }' "$T/stats")" -gt 0
else
	not_ok "null daemon did not start: $(cat "$T/null.log")"
fi
kill "$NPID"
wait "$NPID"

check "--help exits 0" bash -c "'$VHOSTD' --help >/dev/null"
check "--version prints the version" bash -c "'$VHOSTD' --version | grep -q '^vhostd [0-9]'"

# --- a running daemon --------------------------------------------------------

"$VHOSTD" --blk "id=vda,path=$T/disk.img,socket=$T/vda.sock,num-queues=2" \
	--blk "id=vdb,path=$T/ro.img,socket=$T/vdb.sock,readonly=on" \
	--blk "id=vdc,path=$T/shrink.img,socket=$T/vdc.sock" \
	--control "$T/ctl.sock" 2>"$T/daemon.log" &
DPID=$!
if ! wait_for_socket "$T/ctl.sock" 10 || ! wait_for_socket "$T/vdc.sock" 10; then
	not_ok "daemon did not start: $(cat "$T/daemon.log")"
	exit 1
fi
check "start-up line for vda" \
	grep -q "vda: serving $T/disk.img (131072 sectors) on $T/vda.sock" "$T/daemon.log"
check "start-up line for vdb" \
	grep -q "vdb: serving $T/ro.img (16384 sectors) on $T/vdb.sock" "$T/daemon.log"

"$VHOSTCTL" --control "$T/ctl.sock" list >"$T/list"
sed 's/^/# /' "$T/list"
check "list: header" \
	grep -Eq '^ID +TYPE +SIZE +SECTORS +RO +QUEUES +CONNECTED +SOCKET +PATH$' "$T/list"
check "list: vda row" \
	grep -Eq "^vda +blk +64.0M +131072 +no +2 +no +$T/vda.sock +$T/disk.img\$" "$T/list"
check "list: vdb row" \
	grep -Eq "^vdb +blk +8.0M +16384 +yes +1 +no +$T/vdb.sock +$T/ro.img\$" "$T/list"
check "VHOSTD_CONTROL picks the socket" \
	bash -c "VHOSTD_CONTROL='$T/ctl.sock' '$VHOSTCTL' list | grep -q '^vda '"

"$VHOSTCTL" --control "$T/ctl.sock" stats >"$T/stats"
sed 's/^/# /' "$T/stats"
check "stats: one diskstats line per device" \
	awk 'NF < 14 { exit 1 } END { exit NR != 3 }' "$T/stats"
check "stats: idle vda has no reads" test "$(stat_field vda 4)" = 0

# I/O on both queues of vda, reads and writes, the data read back checked.
if "$BENCH" --socket "$T/vda.sock" --rw randrw --bs 4k --iodepth 8 --queues 2 --time 1.5 \
	--verify >"$T/bench.out" 2>&1; then
	ok "vhost-bench randrw --verify on vda"
else
	not_ok "vhost-bench randrw --verify on vda: $(cat "$T/bench.out")"
fi
sed 's/^/# /' "$T/bench.out"
check "vhost-bench --verify: blocks verified" \
	grep -Eq '^  verify: [1-9][0-9]* blocks read back and verified' "$T/bench.out"
"$VHOSTCTL" --control "$T/ctl.sock" stats vda | sed 's/^/# /'
check "stats: reads moved" test "$(stat_field vda 4)" -gt 0
check "stats: sectors read moved" test "$(stat_field vda 6)" -gt 0
check "stats: writes moved" test "$(stat_field vda 8)" -gt 0
check "stats: sectors written moved" test "$(stat_field vda 10)" -gt 0
check "stats: nothing in flight after the run" test "$(stat_field vda 12)" = 0
check "stats: vdb untouched" test "$(stat_field vdb 4)" = 0
check "raw stats: JSON counters" bash -c \
	"'$VHOSTCTL' --control '$T/ctl.sock' raw stats '{\"name\":\"vda\"}' | grep -q '\"in-flight\":0'"

# --verify with two queues at depth 16: no mismatch, and a count in the JSON.
"$BENCH" --socket "$T/vda.sock" --rw randrw --verify --queues 2 --iodepth 16 --time 2 \
	--json >"$T/verify1.out" 2>&1
rc=$?
sed 's/^/# /' "$T/verify1.out"
check "vhost-bench randrw --verify, 2 queues, iodepth 16: exit 0" test "$rc" = 0
check "vhost-bench --verify: JSON counts verified blocks" \
	grep -Eq '"verify":true,"verified":[1-9]' "$T/verify1.out"
# A second run has a new generation: blocks the first run left behind are
# not checked against it (mostly reads, over a region both runs wrote).
"$BENCH" --socket "$T/vda.sock" --rw randrw --verify --size 1M --rwmixread 90 --time 0.5 \
	>"$T/verify2.out" 2>&1
rc=$?
"$BENCH" --socket "$T/vda.sock" --rw randrw --verify --size 1M --rwmixread 90 --time 0.5 \
	>>"$T/verify2.out" 2>&1
rc2=$?
sed 's/^/# /' "$T/verify2.out"
check "vhost-bench --verify: a later run does not flag an earlier run's data" \
	test "$rc" = 0 -a "$rc2" = 0
check "vhost-bench --verify refuses too many blocks to track" \
	bash -c "! '$BENCH' --socket '$T/vda.sock' --verify --bs 512 --size 1t 2>/dev/null"

check "read-only vdb refuses a write benchmark" \
	bash -c "! '$BENCH' --socket '$T/vdb.sock' --rw randwrite --time 0.5 >/dev/null 2>&1"
check "read-only vdb serves reads (--json)" bash -c \
	"'$BENCH' --socket '$T/vdb.sock' --rw read --bs 64k --iodepth 4 --time 0.5 --json | grep -q '\"ios\":[1-9]'"

# The image shrinks under a running benchmark: reads past its new end fail
# with IOERR, and vhost-bench must say so and exit 1.
(sleep 0.5 && truncate -s 4k "$T/shrink.img") &
SPID=$!
"$BENCH" --socket "$T/vdc.sock" --rw randread --time 3 >"$T/bench3.out" 2>&1
rc=$?
wait "$SPID"
sed 's/^/# /' "$T/bench3.out"
check "vhost-bench: a failed request means exit 1" test "$rc" = 1
check "vhost-bench: the failed request is reported" grep -q 'status 1 (IOERR)' "$T/bench3.out"

check "vhostctl: unknown device is an error" \
	bash -c "! '$VHOSTCTL' --control '$T/ctl.sock' stats nosuch 2>/dev/null"
check "vhostctl: unreachable daemon is an error" \
	bash -c "! '$VHOSTCTL' --control '$T/none.sock' list 2>/dev/null"

# Garbage on the control socket, then a valid request on the same connection.
python3 - "$T/ctl.sock" >"$T/reply" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b"\x00\xffgarbage{{{\n"); f.flush()
print(f.readline().decode().strip())
f.write(b'{"jsonrpc":"2.0","id":2,"method":"list-devices"}\n'); f.flush()
print(f.readline().decode().strip())
s.close()
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(b"x" * (8 << 20))
except OSError:
    pass
print(s.recv(4096).decode().strip())
EOF
sed 's/^/# /' "$T/reply"
check "garbage gets a parse error" grep -q '"code":-32700' <(sed -n 1p "$T/reply")
check "same connection still served" grep -q '"id":"vda"' <(sed -n 2p "$T/reply")
check "8 MiB line refused" grep -q 'too long' <(sed -n 3p "$T/reply")
check "daemon alive after garbage" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' list >/dev/null"

# --- SIGTERM during I/O ------------------------------------------------------

writes0=$(stat_field vda 8)
"$BENCH" --socket "$T/vda.sock" --rw randwrite --iodepth 16 --queues 2 --time 30 \
	>"$T/bench2.out" 2>&1 &
BPID=$!
# Wait until writes are really flowing (slow under sanitizers), then signal.
for ((i = 0; i < 100; i++)); do
	now=$(stat_field vda 8)
	[ "${now:-0}" -gt $((writes0 + 100)) ] && break
	sleep 0.1
done
kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
sed 's/^/# /' "$T/daemon.log"
check "SIGTERM during I/O: exit 0" test "$rc" = 0
check "I/O was running when the signal came" test "${now:-0}" -gt $((writes0 + 100))
check "SIGTERM: vda socket removed" test ! -e "$T/vda.sock"
check "SIGTERM: vdb socket removed" test ! -e "$T/vdb.sock"
check "SIGTERM: vdc socket removed" test ! -e "$T/vdc.sock"
check "SIGTERM: control socket removed" test ! -e "$T/ctl.sock"
check "SIGTERM: logged the stop" grep -q "stopped" "$T/daemon.log"
kill "$BPID" 2>/dev/null
wait "$BPID" 2>/dev/null
BPID=

# --- one I/O thread serving two devices, one of them busy ------------------------

# Device h gets a closed loop at QD32 from a polling front-end; device q,
# on the same I/O thread, does verified QD1 I/O at the same time: its
# kicks must be served between h's passes, its data must be right, and
# both must stop cleanly.  No speed is asserted, only progress.  (A queue
# can never pop more than its ring holds in one run, since nothing it
# popped is published before the run ends: the per-pass budget only makes
# the turns finer, which no untimed test can see.)
"$VHOSTD" --io-threads 1 --blk "id=h,backend=null,size=64M,socket=$T/h.sock" \
	--blk "id=q,path=$T/disk.img,socket=$T/q.sock" 2>"$T/fair.log" &
DPID=$!
wait_for_socket "$T/h.sock" 10 && wait_for_socket "$T/q.sock" 10
"$BENCH" --socket "$T/h.sock" --iodepth 32 --poll --time 4 --json >"$T/heavy.json" 2>&1 &
BPID=$!
sleep 0.5
"$BENCH" --socket "$T/q.sock" --rw randrw --verify --iodepth 1 --time 2 --json \
	>"$T/quiet.json" 2>&1
rc=$?
wait "$BPID"
hrc=$?
BPID=
check "one I/O thread: the quiet device's verified I/O passes beside a busy one" test "$rc" = 0
check "one I/O thread: the quiet device made progress" \
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["ios"] < 50)' "$T/quiet.json"
check "one I/O thread: the busy device ran too" test "$hrc" = 0
kill "$DPID"
wait "$DPID"
rc=$?
DPID=
check "one I/O thread: exit 0" test "$rc" = 0

# --- stale sockets, then SIGINT (Ctrl-C) on an idle daemon ----------------------

# Sockets left by a process that died: nobody listens, so they are replaced.
for s in a ctl; do
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/$s.sock"
done
"$VHOSTD" --blk "$good" --control "$T/ctl.sock" 2>"$T/daemon2.log" &
DPID=$!
# The stale file is there from the start: wait for the daemon to answer.
for ((i = 0; i < 100; i++)); do
	"$VHOSTCTL" --control "$T/ctl.sock" version >/dev/null 2>&1 && break
	sleep 0.1
done
check "stale sockets replaced" "$VHOSTCTL" --control "$T/ctl.sock" version
kill -INT "$DPID"
wait "$DPID"
rc=$?
DPID=
check "SIGINT: exit 0" test "$rc" = 0
check "SIGINT: sockets removed" test ! -e "$T/a.sock" -a ! -e "$T/ctl.sock"

exit $failed

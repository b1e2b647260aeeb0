#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fio.sh VHOSTD VHOSTD_FIO_SO [VHOSTCTL] - fio through our external ioengine
# (tools/fio/vhostd-fio.so) against vhostd:
#   - file back-end: randwrite + verify (crc32c), numjobs=2 on two queues,
#     split ring with call eventfd, then packed with polling; the data is
#     in the image afterwards;
#   - null back-end: randrw completes (no verify: nothing is stored), and a
#     verify job on it fails (the test can see bad data);
#   - NBD back-end on nbdkit memory: randwrite + verify, numjobs=2;
#   - thread=0 and a missing socket: fio fails with the engine's message.
# FIO_PRELOAD (a sanitized build's engine): LD_PRELOAD for fio alone.
set -u

VHOSTD=$1
FIO_SO=$2
VHOSTCTL=${3:-}

T=$(mktemp -d /tmp/vhostd-test-fio.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

NPID=
trap '[ -n "$NPID" ] && kill "$NPID" 2>/dev/null; cleanup' EXIT

start_daemon() { # log args...
	local log=$1
	shift
	DLOG=$log
	rm -f "$T/a.sock" "$T/ctl.sock"
	"$VHOSTD" --control "$T/ctl.sock" "$@" 2>"$log" &
	DPID=$!
	wait_for_socket "$T/a.sock" 10
}
# SIGTERM; the daemon must exit 0 with nothing from a sanitizer in its log.
stop_daemon() {
	local rc
	[ -n "$DPID" ] || return 0
	kill "$DPID" 2>/dev/null
	# SIGTERM must end it promptly; a hang is a failure that names itself.
	for _ in $(seq 300); do
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DPID" 2>/dev/null; then
		not_ok "vhostd did not exit within 30 s of SIGTERM: $(tail -n 5 "$DLOG")"
		kill -9 "$DPID" 2>/dev/null
	fi
	wait "$DPID" 2>/dev/null
	rc=$?
	DPID=
	if [ "$rc" != 0 ] || grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$DLOG"; then
		not_ok "vhostd ($DLOG) exit $rc: $(grep -m 5 -E 'Sanitizer|runtime error|error:' "$DLOG")"
	fi
}

# run_fio DESCRIPTION EXPECT(0|fail) fio-args...
run_fio() {
	local what=$1 want=$2 rc
	shift 2
	timeout 60 env ${FIO_PRELOAD:+LD_PRELOAD="$FIO_PRELOAD" ASAN_OPTIONS=detect_leaks=0} \
		fio --thread --ioengine="external:$FIO_SO" --socket="$T/a.sock" \
		--filename=vhostd --name=job --group_reporting "$@" >"$T/fio.out" 2>&1
	rc=$?
	if { [ "$want" = 0 ] && [ "$rc" = 0 ]; } || { [ "$want" = fail ] && [ "$rc" != 0 ]; }; then
		ok "$what"
	else
		not_ok "$what: fio exit $rc: $(tail -n 20 "$T/fio.out")"
		[ -n "$DPID" ] && sed 's/^/# vhostd: /' "$DLOG" | tail -n 20
		# What the daemon thinks is in flight per queue: tells a lost
		# back-end completion (in flight here) from a lost kick or
		# interrupt (nothing in flight here, fio still waiting).
		[ -n "$DPID" ] && [ -n "$VHOSTCTL" ] &&
			timeout 5 "$VHOSTCTL" --control "$T/ctl.sock" stats 2>&1 | sed 's/^/# vhostctl stats: /'
	fi
	grep -E 'IOPS=|err=|verify|vhostd-fio' "$T/fio.out" | head -n 6 | sed 's/^/# /'
}

# Total ios fio reports as issued for reads and writes.
issued() { sed -n 's/.*issued rwts: total=\([0-9]*\),\([0-9]*\),.*/\1 \2/p' "$T/fio.out"; }

VERIFY=(--rw=randwrite --bs=4k --iodepth=16 --numjobs=2 --size=16M --offset_increment=32M
	--verify=crc32c --do_verify=1 --verify_fatal=1)

truncate -s 128M "$T/disk.img"
start_daemon "$T/d1.log" --blk "id=vf,path=$T/disk.img,socket=$T/a.sock,num-queues=2"
run_fio "file: randwrite+verify, 2 jobs, split, call eventfd" 0 "${VERIFY[@]}"
check "file: every written block read back" test "$(issued)" = "8192 8192"
run_fio "file: randwrite+verify, 2 jobs, packed, polling" 0 "${VERIFY[@]}" --packed=1 --poll=1 \
	--bsrange=4k-64k --randseed=7
check "file: the image holds the data" bash -c "! cmp -s -n 16M '$T/disk.img' /dev/zero"
run_fio "file: thread=0 is refused" fail "${VERIFY[@]}" --thread=0
check "file: thread=0 message" grep -q "use thread=1" "$T/fio.out"
run_fio "file: 3 jobs on 2 queues are refused" fail "${VERIFY[@]}" --numjobs=3
stop_daemon

start_daemon "$T/d2.log" --blk "id=vn,backend=null,size=1G,socket=$T/a.sock,num-queues=2"
run_fio "null: randrw, 2 jobs, completes" 0 --rw=randrw --bs=4k --iodepth=32 --numjobs=2 \
	--time_based --runtime=1
check "null: I/O issued" awk '$1 > 0 && $2 > 0 { ok = 1 } END { exit !ok }' <<<"$(issued)"
run_fio "null: verify fails (reads return zeroes)" fail "${VERIFY[@]}" --numjobs=1
stop_daemon

rm -f "$T/nbd.sock"
nbdkit -f --exit-with-parent --unix "$T/nbd.sock" memory 128M 2>"$T/nbdkit.log" &
NPID=$!
wait_for_socket "$T/nbd.sock" 10
start_daemon "$T/d3.log" --blk "id=vb,backend=nbd,uri=nbd+unix:///?socket=$T/nbd.sock,socket=$T/a.sock,num-queues=2"
run_fio "nbd: randwrite+verify, 2 jobs" 0 "${VERIFY[@]}"
check "nbd: every written block read back" test "$(issued)" = "8192 8192"
run_fio "nbd: randwrite+verify, packed, polling" 0 "${VERIFY[@]}" --packed=1 --poll=1
stop_daemon
kill "$NPID"
wait "$NPID" 2>/dev/null
NPID=

run_fio "no socket: fio fails" fail --rw=read --size=1M
check "no socket: the engine says why" grep -q "vhostd-fio: cannot connect" "$T/fio.out"

exit $failed

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# nbd.sh VHOSTD VHOSTCTL VHOST_BENCH BLK_FEATURES - the NBD back-end (backend=nbd) end to
# end against real NBD servers that this script starts and stops by PID:
#   - bad uri= / unreachable server / read-only export: one-line errors;
#   - nbdkit memory over a unix socket: vhost-bench --verify on two queues,
#     split and packed, and `vhostctl stats` counts the I/O;
#   - nbdkit file over TCP and qemu-nbd: --verify, and the data is in the
#     server's image afterwards (read back with cmp through a second run);
#   - blk and LUN added at run time (vhostctl add), saved with save-config
#     and started again from --config;
#   - a SCSI LUN on NBD: --verify through READ/WRITE (16), and one more
#     hot-added with vhostctl scsi-add-lun and an NBD URI;
#   - what the server lacks is not offered to the driver (blk_features
#     prints the negotiated block features): no write-zeroes behind the
#     nozero filter, no flush from `nbdkit full`, no discard or
#     write-zeroes on a read-only export;
#   - the server restarted under vhost-bench --verify: no failed request,
#     no mismatch, the daemon logs the reconnect;
#   - the server gone for good: I/O fails with EIO after the bound
#     (VHOSTD_NBD_RECONNECT_S=2) with one error line, and works again once
#     a server is back.
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3
FEATURES=$4

T=$(mktemp -d /tmp/vhostd-test-nbd.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

NPID=
stop_server() {
	if [ -n "$NPID" ]; then
		kill "$NPID" 2>/dev/null
		wait "$NPID" 2>/dev/null
	fi
	NPID=
}
# SIGTERM; the daemon must exit 0 with nothing from a sanitizer in its log.
stop_daemon() {
	local rc
	[ -n "$DPID" ] || return 0
	kill "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	rc=$?
	DPID=
	if [ "$rc" != 0 ] || grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$DLOG"; then
		not_ok "vhostd ($DLOG) exit $rc: $(grep -m 5 -E 'Sanitizer|runtime error|error:' "$DLOG")"
	fi
}
trap 'stop_daemon; stop_server; cleanup' EXIT

# nbdkit in the foreground, in the background: its PID is ours to stop.
start_nbdkit() { # socket args...
	local sock=$1
	shift
	rm -f "$sock"
	nbdkit -f --exit-with-parent --unix "$sock" "$@" 2>>"$T/nbdkit.log" &
	NPID=$!
	wait_for_socket "$sock" 10
}

start_daemon() { # log args...
	local log=$1
	shift
	DLOG=$log
	"$VHOSTD" --control "$T/ctl.sock" "$@" 2>"$log" &
	DPID=$!
	wait_for_socket "$T/ctl.sock" 10
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

expect_fail() { # status description args...
	local want=$1 what=$2 rc lines
	shift 2
	"$VHOSTD" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	lines=$(wc -l <"$T/err")
	if [ "$rc" -ne "$want" ] || [ "$lines" -ne 1 ]; then
		not_ok "$what: exit $rc (want $want), $lines lines: $(cat "$T/err")"
	else
		ok "$what ($(cat "$T/err"))"
	fi
	rm -f "$T/a.sock"
}

bench_ok() { # description args...
	local what=$1
	shift
	if timeout 120 "$BENCH" "$@" >"$T/bench.out" 2>&1; then
		ok "$what"
	else
		not_ok "$what: $(cat "$T/bench.out")"
	fi
	sed 's/^/# /' "$T/bench.out"
}

verified() { grep -Eq '^  verify: [1-9][0-9]* blocks read back and verified, no mismatch' "$T/bench.out"; }

# --- bad configurations ------------------------------------------------------------

expect_fail 2 "backend=nbd without uri" --blk "id=n0,backend=nbd,socket=$T/a.sock"
expect_fail 2 "uri= that is not NBD" --blk "id=n0,backend=nbd,uri=http://x/y,socket=$T/a.sock"
expect_fail 2 "uri= with backend=file" --blk "id=n0,uri=nbd://localhost/x,socket=$T/a.sock"
expect_fail 2 "backend=nbd with a path" --blk "id=n0,backend=nbd,path=$T/x,socket=$T/a.sock"
expect_fail 2 "backend=nbd with size" \
	--blk "id=n0,backend=nbd,uri=nbd+unix:///?socket=$T/n.sock,size=1M,socket=$T/a.sock"
expect_fail 1 "no server" --blk "id=n0,backend=nbd,uri=nbd+unix:///?socket=$T/none.sock,socket=$T/a.sock"

# --- nbdkit memory, unix socket -------------------------------------------------

start_nbdkit "$T/mem.sock" memory 256M
uri="nbd+unix:///?socket=$T/mem.sock"
start_daemon "$T/d1.log" --blk "id=nbd0,backend=nbd,uri=$uri,socket=$T/a.sock,num-queues=2"
if wait_for_socket "$T/a.sock" 10; then
	check "memory: size and features logged" \
		grep -q "nbd0: $uri: 268435456 bytes, flush yes, fua yes, trim yes, zero yes, multi-conn" "$T/d1.log"
	check "memory: flush, discard and write-zeroes offered" \
		test "$("$FEATURES" "$T/a.sock")" = "flush discard write-zeroes"
	bench_ok "memory: randrw --verify, 2 queues, split" --socket "$T/a.sock" --rw randrw \
		--queues 2 --iodepth 16 --time 1 --verify
	check "memory: split data verified" verified
	bench_ok "memory: randrw --verify, 2 queues, packed" --socket "$T/a.sock" --rw randrw \
		--queues 2 --iodepth 16 --time 1 --verify --packed --bs 16k
	check "memory: packed data verified" verified
	"$VHOSTCTL" --control "$T/ctl.sock" stats nbd0 >"$T/stats"
	sed 's/^/# /' "$T/stats"
	check "memory: vhostctl stats counts reads and writes" \
		awk '$3 == "nbd0" && $4 > 0 && $8 > 0 && $12 == 0 { ok = 1 } END { exit !ok }' "$T/stats"
	check "memory: vhostctl list says nbd" bash -c \
		"'$VHOSTCTL' --control '$T/ctl.sock' list | grep -q 'nbd0 .*nbd+unix'"
else
	not_ok "memory: vhostd did not start: $(cat "$T/d1.log")"
fi
stop_daemon
stop_server

# Added at run time, saved, and brought back by --config.
start_nbdkit "$T/mem.sock" memory 64M
start_daemon "$T/c1.log" --scsi "id=sc1,socket=$T/s.sock"
check "config: vhostctl add blk with backend=nbd" "$VHOSTCTL" --control "$T/ctl.sock" add blk \
	"id=nb1,backend=nbd,uri=nbd+unix:///?socket=$T/mem.sock,socket=$T/a.sock"
check "config: vhostctl add lun with backend=nbd" "$VHOSTCTL" --control "$T/ctl.sock" add lun \
	"scsi=sc1,target=0,lun=0,backend=nbd,uri=nbd+unix:///?socket=$T/mem.sock"
"$VHOSTCTL" --control "$T/ctl.sock" save-config "$T/cfg.json"
check "config: saved as backend nbd with its uri" \
	test "$(grep -c '"uri":"nbd+unix:///?socket=' "$T/cfg.json")" = 2
stop_daemon
start_daemon "$T/c2.log" --config "$T/cfg.json"
if wait_for_socket "$T/s.sock" 10 && wait_for_socket "$T/a.sock" 10; then
	bench_ok "config: the reloaded blk device verifies" --socket "$T/a.sock" --rw randrw \
		--time 0.5 --verify
	bench_ok "config: the reloaded LUN verifies" --socket "$T/s.sock" --scsi-lun 0:0 \
		--rw randrw --time 0.5 --verify
else
	not_ok "config: vhostd --config did not start: $(cat "$T/c2.log")"
fi
stop_daemon
stop_server

# A read-only export needs readonly=on.
start_nbdkit "$T/ro.sock" -r memory 16M
expect_fail 1 "read-only export without readonly=on" \
	--blk "id=n0,backend=nbd,uri=nbd+unix:///?socket=$T/ro.sock,socket=$T/a.sock"
start_daemon "$T/d2.log" --blk "id=ro,backend=nbd,uri=nbd+unix:///?socket=$T/ro.sock,socket=$T/a.sock,readonly=on"
if wait_for_socket "$T/a.sock" 10; then
	bench_ok "read-only export: reads" --socket "$T/a.sock" --rw randread --time 0.5
	check "read-only export: ro, no discard or write-zeroes" \
		test "$("$FEATURES" "$T/a.sock")" = "flush ro"
else
	not_ok "read-only export: vhostd did not start: $(cat "$T/d2.log")"
fi
stop_daemon
stop_server

# Without zero support on the server, no write-zeroes for the guest.
start_nbdkit "$T/nz.sock" --filter=nozero memory 16M zeromode=none
start_daemon "$T/d3.log" --blk "id=nz,backend=nbd,uri=nbd+unix:///?socket=$T/nz.sock,socket=$T/a.sock"
wait_for_socket "$T/a.sock" 10
check "nozero: logged as zero no" grep -q 'flush yes, fua yes, trim yes, zero no, multi-conn' "$T/d3.log"
check "nozero: no write-zeroes offered" test "$("$FEATURES" "$T/a.sock")" = "flush discard"
stop_daemon
stop_server

# nbdkit's full plugin has no flush: none offered, so the guest runs the
# disk writethrough.
start_nbdkit "$T/full.sock" full 16M
start_daemon "$T/d3b.log" --blk "id=nf,backend=nbd,uri=nbd+unix:///?socket=$T/full.sock,socket=$T/a.sock"
wait_for_socket "$T/a.sock" 10
check "no flush: none offered" test "$("$FEATURES" "$T/a.sock")" = "discard write-zeroes"
stop_daemon
stop_server

# --- nbdkit file over TCP; qemu-nbd; a SCSI LUN -------------------------------------

truncate -s 64M "$T/file.img"
port=$(free_port)
nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$port" file "$T/file.img" 2>>"$T/nbdkit.log" &
NPID=$!
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
start_daemon "$T/d4.log" --blk "id=tcp,backend=nbd,uri=nbd://127.0.0.1:$port/,socket=$T/a.sock,num-queues=2"
if wait_for_socket "$T/a.sock" 10; then
	bench_ok "file over TCP: randwrite --verify" --socket "$T/a.sock" --rw randrw --queues 2 \
		--time 1 --verify --bs 64k
	check "file over TCP: data verified" verified
else
	not_ok "file over TCP: vhostd did not start: $(cat "$T/d4.log")"
fi
stop_daemon
# What went through the daemon is in the server's file: not all zeroes.
check "file over TCP: the image holds the data" \
	bash -c "! cmp -s '$T/file.img' <(head -c 64M /dev/zero)"
stop_server

qemu-nbd -f raw --socket="$T/q.sock" --persistent --shared=4 "$T/file.img" 2>>"$T/nbdkit.log" &
NPID=$!
wait_for_socket "$T/q.sock" 10
start_daemon "$T/d5.log" --scsi "id=sc0,socket=$T/s.sock" \
	--lun "scsi=sc0,target=0,lun=0,backend=nbd,uri=nbd+unix:///?socket=$T/q.sock"
if wait_for_socket "$T/s.sock" 10; then
	bench_ok "qemu-nbd: SCSI LUN randrw --verify" --socket "$T/s.sock" --scsi-lun 0:0 \
		--rw randrw --time 1 --verify
	check "qemu-nbd: SCSI data verified" verified
	check "qemu-nbd: LUN in vhostctl stats" bash -c \
		"'$VHOSTCTL' --control '$T/ctl.sock' stats sc0:0:0 | awk '\$4 > 0 && \$8 > 0 { ok = 1 } END { exit !ok }'"
	# A second LUN on the same export, hot-added over the control socket.
	check "qemu-nbd: vhostctl scsi-add-lun with an NBD URI" "$VHOSTCTL" --control "$T/ctl.sock" \
		scsi-add-lun sc0 0 1 "nbd+unix:///?socket=$T/q.sock"
	check "qemu-nbd: the hot-added LUN is listed as nbd" bash -c \
		"'$VHOSTCTL' --control '$T/ctl.sock' list | grep -Eq '^sc0:0:1 +scsi +64.0M .*nbd\+unix'"
	bench_ok "qemu-nbd: hot-added LUN randrw --verify" --socket "$T/s.sock" --scsi-lun 0:1 \
		--rw randrw --time 1 --verify
	check "qemu-nbd: hot-added LUN data verified" verified
else
	not_ok "qemu-nbd: vhostd did not start: $(cat "$T/d5.log")"
fi
stop_daemon
start_daemon "$T/d6.log" --blk "id=q,backend=nbd,uri=nbd+unix:///?socket=$T/q.sock,socket=$T/a.sock,num-queues=2"
if wait_for_socket "$T/a.sock" 10; then
	bench_ok "qemu-nbd: blk randrw --verify, packed" --socket "$T/a.sock" --rw randrw \
		--queues 2 --time 1 --verify --packed
	check "qemu-nbd: blk data verified" verified
else
	not_ok "qemu-nbd: vhostd did not start: $(cat "$T/d6.log")"
fi
stop_daemon
stop_server

# --- the server restarts under I/O ------------------------------------------------

truncate -s 64M "$T/r.img"
start_nbdkit "$T/r.sock" file "$T/r.img"
start_daemon "$T/d7.log" --blk "id=rs,backend=nbd,uri=nbd+unix:///?socket=$T/r.sock,socket=$T/a.sock,num-queues=2"
if wait_for_socket "$T/a.sock" 10; then
	timeout 120 "$BENCH" --socket "$T/a.sock" --rw randrw --queues 2 --iodepth 16 --time 5 \
		--verify >"$T/bench.out" 2>&1 &
	BPID=$!
	sleep 1.5
	stop_server
	sleep 0.5
	start_nbdkit "$T/r.sock" file "$T/r.img"
	sleep 1
	stop_server # twice, to be sure a reconnected queue survives another
	start_nbdkit "$T/r.sock" file "$T/r.img"
	if wait "$BPID"; then
		ok "restart: vhost-bench --verify across two server restarts"
	else
		not_ok "restart: vhost-bench failed: $(cat "$T/bench.out")"
	fi
	BPID=
	sed 's/^/# /' "$T/bench.out"
	check "restart: data verified" verified
	check "restart: the daemon reconnected" grep -q "rs: reconnected to" "$T/d7.log"
	check "restart: no request failed in the daemon" bash -c "! grep -q 'request type' '$T/d7.log'"
else
	not_ok "restart: vhostd did not start: $(cat "$T/d7.log")"
fi
stop_daemon

# --- the server stays gone, then comes back -------------------------------------------

VHOSTD_NBD_RECONNECT_S=2 start_daemon "$T/d8.log" \
	--blk "id=gone,backend=nbd,uri=nbd+unix:///?socket=$T/r.sock,socket=$T/a.sock"
if wait_for_socket "$T/a.sock" 10; then
	stop_server
	start=$(date +%s)
	timeout 60 "$BENCH" --socket "$T/a.sock" --rw randread --iodepth 4 --time 1 >"$T/bench.out" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	sed 's/^/# /' "$T/bench.out"
	check "gone: I/O fails (exit 1), not hangs" test "$rc" = 1
	check "gone: within the bound (${took} s)" test "$took" -le 20
	check "gone: one clear error line" test "$(grep -c 'no usable connection' "$T/d8.log")" = 1
	start_nbdkit "$T/r.sock" file "$T/r.img"
	bench_ok "gone: I/O works again once the server is back" --socket "$T/a.sock" \
		--rw randrw --time 0.5 --verify
else
	not_ok "gone: vhostd did not start: $(cat "$T/d8.log")"
fi
stop_daemon
stop_server
sed 's/^/# vhostd: /' "$T"/d7.log "$T"/d8.log | grep -v ' info: ' | head -20

exit $failed

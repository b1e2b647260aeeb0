#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# sigbus.sh VHOSTD VHOSTCTL VHOST_BENCH SIGBUS_CLIENT - a front-end that
# truncates its guest memory under I/O must not kill vhostd (issues 9, 12):
#   - two blk devices on one I/O thread: a (null back-end) is attacked by
#     sigbus_client, b (a file) runs vhost-bench --verify meanwhile;
#   - the client sees NEEDS_RESET and nothing more completes on a;
#   - vhostd is alive, `vhostctl stats` answers for both devices, the log
#     has exactly one error line, naming the lost region;
#   - b's verified run finishes cleanly, a takes a new front-end that does
#     I/O, and SIGTERM still exits 0.
# shellcheck disable=SC2317 # functions run by trap and by check()
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3
CLIENT=$4

T=$(mktemp -d /tmp/vhostd-test-sigbus.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

truncate -s 64M "$T/b.img"
# One I/O thread: the fault hits the very thread that serves b.
"$VHOSTD" --io-threads 1 \
	--blk "id=a,backend=null,size=64M,socket=$T/a.sock" \
	--blk "id=b,path=$T/b.img,socket=$T/b.sock" \
	--control "$T/ctl.sock" 2>"$T/daemon.log" &
DPID=$!
if ! wait_for_socket "$T/ctl.sock" 10 || ! wait_for_socket "$T/b.sock" 10; then
	not_ok "vhostd did not start: $(cat "$T/daemon.log")"
	exit 1
fi

# Device b: verified reads and writes throughout.
"$BENCH" --socket "$T/b.sock" --rw randrw --verify --size 16m --iodepth 8 --time 3 \
	>"$T/b.out" 2>&1 &
BPID=$!
sleep 0.5

"$CLIENT" "$T/a.sock" >"$T/client.out" 2>&1
rc=$?
sed 's/^/# /' "$T/client.out"
check "client: device a said NEEDS_RESET and stopped (exit 0)" test "$rc" = 0
check "vhostd is alive after the truncation" kill -0 "$DPID"
"$VHOSTCTL" --control "$T/ctl.sock" stats >"$T/stats" 2>&1
rc=$?
sed 's/^/# /' "$T/stats"
check "vhostctl stats answers" test "$rc" = 0
check "vhostctl stats lists both devices" test "$(wc -l <"$T/stats")" = 2

wait "$BPID"
rc=$?
BPID=
sed 's/^/# /' "$T/b.out"
check "device b: vhost-bench --verify ran clean throughout (exit 0)" test "$rc" = 0

check "device a: a new front-end does I/O" \
	"$BENCH" --socket "$T/a.sock" --rw randread --iodepth 4 --time 0.3
check "vhostd is alive at the end" kill -0 "$DPID"

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "SIGTERM: exit 0" test "$rc" = 0

sed 's/^/# /' "$T/daemon.log"
check "log: exactly one error line" test "$(grep -c 'error:' "$T/daemon.log")" = 1
check "log: it names the lost region" \
	grep -q 'a: device needs reset: guest memory region [0-9]* (guest address .*) is gone' \
	"$T/daemon.log"
exit $failed

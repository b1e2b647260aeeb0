#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rbd.sh VHOSTD VHOSTCTL VHOST_BENCH TEST_RBD_BACKEND - backend=rbd against a
# real one-node Ceph cluster (tests/ceph/ceph-up.sh, or the one scripts/test.sh
# shares through VHOSTD_CEPH_CONF), brought up once for all of these:
#   - the back-end on its own (test_rbd_backend);
#   - a --blk device with two queues and a SCSI LUN, each on its own RBD
#     image: vhost-bench --verify (random writes, then reads checked), the
#     image size from the cluster, `vhostctl list` / `stats`;
#   - what the guest wrote is in the image: a write over the whole of a small
#     image, read back with `rbd export`, equals what vhost-bench read;
#   - one-line errors and exit 1 for a missing pool, image or conf, and for
#     a cluster nobody answers for (bounded: no more than 30 s).
# Exit 77 (SKIP) with the reason when a Ceph daemon cannot run here.
set -u

VHOSTD=$1
VHOSTCTL=$2
BENCH=$3
BACKEND_TEST=$4

T=$(mktemp -d /tmp/vhostd-test-rbd.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/../daemon/tap.sh"
# shellcheck source=tests/ceph/lib.sh
. "$(dirname "$0")/lib.sh"
trap 'ceph_cluster_down; cleanup' EXIT
# A meson timeout (SIGTERM) must still stop the cluster.
trap 'exit 1' INT TERM

ceph_cluster "$T/ceph"
rc=$?
if [ "$rc" = 77 ]; then
	echo "SKIP: $CEPH_WHY"
	exit 77
fi
[ "$rc" = 0 ] || { echo "not ok - the Ceph cluster did not come up: ${CEPH_WHY:-}"; exit 1; }
C=$CEPH_CONF
img=vhd-rbd-$$

# --- the back-end on its own ---
ceph_image "$img-be" 64M || exit 1
check "test_rbd_backend" "$BACKEND_TEST" "$C" rbd "$img-be"

# --- vhostd: a --blk device and a SCSI LUN, each on its own image ---
ceph_image "$img-blk" 96M && ceph_image "$img-lun" 80M || exit 1
"$VHOSTD" --blk "id=rb0,backend=rbd,pool=rbd,image=$img-blk,conf=$C,socket=$T/b.sock,num-queues=2" \
	--scsi "id=rs0,socket=$T/s.sock" \
	--lun "scsi=rs0,target=0,lun=1,backend=rbd,pool=rbd,image=$img-lun,conf=$C,cache=none" \
	--control "$T/ctl.sock" 2>"$T/d.log" &
DPID=$!
if ! wait_for_socket "$T/ctl.sock" 30 || ! wait_for_socket "$T/s.sock" 5; then
	not_ok "vhostd did not start: $(cat "$T/d.log")"
	exit 1
fi
sed 's/^/# /' "$T/d.log"
check "start-up line names the image" grep -q "rb0: serving rbd:rbd/$img-blk (196608 sectors)" "$T/d.log"

"$VHOSTCTL" --control "$T/ctl.sock" list >"$T/list"
sed 's/^/# /' "$T/list"
check "list: blk row, size from the cluster" \
	grep -Eq "^rb0 +blk +96.0M +196608 +no +2 +no +$T/b.sock +rbd:rbd/$img-blk\$" "$T/list"
check "list: LUN row" grep -Eq "^rs0:0:1 +scsi +80.0M +163840 +no .* rbd:rbd/$img-lun\$" "$T/list"

"$BENCH" --socket "$T/b.sock" --rw randrw --verify --queues 2 --iodepth 16 --time 3 >"$T/bench" 2>&1
rc=$?
sed 's/^/# /' "$T/bench"
check "blk: vhost-bench --verify, 2 queues, QD16" test "$rc" = 0
check "blk: blocks were verified" grep -Eq 'verify: [1-9][0-9]* blocks read back and verified' "$T/bench"

"$BENCH" --socket "$T/s.sock" --scsi-lun 0:1 --rw randrw --verify --iodepth 16 --time 3 \
	>"$T/sbench" 2>&1
rc=$?
sed 's/^/# /' "$T/sbench"
check "scsi LUN: vhost-bench --verify" test "$rc" = 0
check "scsi LUN: blocks were verified" grep -Eq 'verify: [1-9][0-9]* blocks read back' "$T/sbench"

# A LUN on an RBD image added while the daemon runs (scsi-add-lun over JSON-RPC).
ceph_image "$img-hot" 16M || exit 1
check "scsi-add-lun of an RBD image" "$VHOSTCTL" --control "$T/ctl.sock" raw scsi-add-lun \
	"{\"name\": \"rs0\", \"target\": 0, \"lun\": 2, \"backend\": \"rbd\", \"pool\": \"rbd\", \"image\": \"$img-hot\", \"conf\": \"$C\"}"
check "list: the added LUN" bash -c "'$VHOSTCTL' --control '$T/ctl.sock' list | grep -Eq '^rs0:0:2 +scsi +16.0M .* rbd:rbd/$img-hot\$'"
"$BENCH" --socket "$T/s.sock" --scsi-lun 0:2 --rw randrw --verify --iodepth 8 --time 2 >"$T/hbench" 2>&1
check "added LUN: vhost-bench --verify" test $? = 0
check "scsi-remove-lun" "$VHOSTCTL" --control "$T/ctl.sock" scsi-remove-lun rs0 0 2

"$VHOSTCTL" --control "$T/ctl.sock" stats >"$T/stats"
sed 's/^/# /' "$T/stats"
check "stats: blk reads and writes counted, none in flight" \
	awk '$3 == "rb0" && $4 > 0 && $8 > 0 && $12 == 0 { f = 1 } END { exit !f }' "$T/stats"
check "stats: LUN reads and writes counted" \
	awk '$3 == "rs0:0:1" && $4 > 0 && $8 > 0 && $12 == 0 { f = 1 } END { exit !f }' "$T/stats"

kill "$DPID"
wait "$DPID"
check "vhostd: exit 0 on SIGTERM" test $? = 0
DPID=

# --- the data is in the image: a sequential write of all of it, then rbd export ---
ceph_image "$img-x" 4M || exit 1
"$VHOSTD" --blk "id=rx,backend=rbd,pool=rbd,image=$img-x,conf=$C,socket=$T/x.sock" 2>"$T/x.log" &
DPID=$!
wait_for_socket "$T/x.sock" 30
# One pass of 4M in 64K writes (--verify tags each block with its offset), then reads.
"$BENCH" --socket "$T/x.sock" --rw write --bs 64k --iodepth 4 --verify --time 1 >"$T/xbench" 2>&1
check "export: sequential verified write" test $? = 0
kill "$DPID"
wait "$DPID"
DPID=
timeout 60 rbd -c "$C" export "rbd/$img-x" "$T/x.raw" >/dev/null 2>&1
check "export: rbd export of the image" test -s "$T/x.raw"
gen=$(sed -n 's/.*(generation 0x\([0-9a-f]*\)).*/\1/p' "$T/xbench")
"$(dirname "$0")/check-tags.py" "$T/x.raw" "${gen:-0}" >"$T/tags" 2>&1
check "export: every sector holds what the front-end wrote there" test $? = 0
sed 's/^/# /' "$T/tags"

# --- errors: one line, exit 1 ---
expect_fail() { # description args...
	local what=$1 rc lines t0 t1
	shift
	t0=$(date +%s)
	"$VHOSTD" "$@" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	t1=$(date +%s)
	lines=$(wc -l <"$T/err")
	if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ]; then
		not_ok "$what: exit $rc, $lines lines: $(cat "$T/err")"
	elif [ $((t1 - t0)) -gt 30 ]; then
		not_ok "$what: took $((t1 - t0)) s"
	else
		ok "$what ($(cat "$T/err"), $((t1 - t0)) s)"
	fi
}
base="id=e0,socket=$T/e.sock,backend=rbd"
expect_fail "missing pool" --blk "$base,pool=nopool,image=$img-x,conf=$C"
expect_fail "missing image" --blk "$base,pool=rbd,image=nope,conf=$C"
expect_fail "missing conf" --blk "$base,pool=rbd,image=$img-x,conf=$T/nope.conf"
expect_fail "missing LUN image" --scsi "id=s9,socket=$T/e.sock" \
	--lun "scsi=s9,target=0,lun=0,backend=rbd,pool=rbd,image=nope,conf=$C"
# A cluster nobody answers for, with Ceph's own timeouts (300 s) left in place:
# the back-end bounds the wait.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/^mon host = .*/mon host = v2:127.0.0.1:$port/" -e '/timeout/d' "$C" >"$T/dead.conf"
expect_fail "unreachable cluster" --blk "$base,pool=rbd,image=$img-x,conf=$T/dead.conf"

for i in be blk lun hot x; do rbd -c "$C" rm "rbd/$img-$i" >/dev/null 2>&1; done
exit $failed

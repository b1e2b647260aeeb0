#!/usr/bin/env bash
# blk-rbd: a guest on a disk whose storage is a Ceph RBD image.  The case
# brings up a one-node cluster (tests/ceph/ceph-up.sh; or uses the one
# VHOSTD_CEPH_CONF names) and serves image rbd/NAME with backend=rbd
# (vhostd) or driver=rbd (qemu-storage-daemon, the reference).  In the
# guest: host-made random data written with O_DIRECT from both vCPUs, two
# concurrent fio verify jobs (crc32c), and sha256 of every region read back.
# On the host, after the back-end has stopped: `rbd export` of the image
# must hold the host's data where the guest wrote it, and the sums the guest
# reported for the fio regions.  SKIP (77) only when a Ceph daemon cannot
# run on this machine, with ceph-up.sh's reason.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"
# shellcheck source=tests/ceph/lib.sh
source "$REPO/tests/ceph/lib.sh"

DISK_SIZE=$((160 << 20))
PATTERN_OFF=$((128 << 20))
PATTERN_LEN=$((8 << 20))

start_rbd_backend() { # image
	SOCK=$WORK/vhost.sock
	case $BACKEND in
	qsd)
		qemu-storage-daemon \
			--blockdev "driver=rbd,node-name=r0,pool=rbd,image=$1,conf=$CEPH_CONF,cache.direct=on" \
			--export "type=vhost-user-blk,id=e0,node-name=r0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=$NUM_QUEUES" \
			>"$WORK/backend.log" 2>&1 &
		;;
	vhostd)
		"$VHOSTD_BIN" --blk "id=vda,backend=rbd,pool=rbd,image=$1,conf=$CEPH_CONF,socket=$SOCK,num-queues=$NUM_QUEUES" \
			>"$WORK/backend.log" 2>&1 &
		;;
	esac
	BACKEND_PID=$!
	# librbd's connect can take a moment on a loaded machine.
	for ((i = 0; i < 300; i++)); do
		[[ -S $SOCK ]] && return 0
		kill -0 "$BACKEND_PID" 2>/dev/null || gdie "back-end exited: $(cat "$WORK/backend.log")"
		sleep 0.1
	done
	gdie "no socket $SOCK after 30 s"
}

main() {
	require_backend
	guest_workdir
	local here data img rc=0 t0
	here=$(dirname "$0")
	data=$WORK/data
	img=vhd-guest-$$
	mkdir -p "$data"

	t0=${EPOCHREALTIME/./}
	ceph_cluster "$WORK/ceph" >&2 || rc=$?
	trap 'ceph_cluster_down >/dev/null; guest_cleanup' EXIT
	if ((rc == 77)); then
		glog "SKIP: $CEPH_WHY"
		exit 77
	fi
	((rc == 0)) || gdie "no Ceph cluster: ${CEPH_WHY:-}"
	glog "Ceph cluster ready after $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"
	ceph_image "$img" $((DISK_SIZE >> 20))M || gdie "rbd create failed"

	head -c "$PATTERN_LEN" /dev/urandom >"$data/pattern.bin"
	echo "$DISK_SIZE $PATTERN_OFF $PATTERN_LEN" >"$data/layout"
	echo "$NUM_QUEUES" >"$data/num_queues"

	start_rbd_backend "$img"
	blk_device "$SOCK"
	boot_guest "$here/guest.sh" "$data"
	stop_backend

	# What the guest wrote, read back through Ceph's own tool.
	timeout 120 rbd -c "$CEPH_CONF" export "rbd/$img" "$WORK/export.raw" >/dev/null 2>&1 ||
		gdie "rbd export failed"
	[[ $(stat -c %s "$WORK/export.raw") == "$DISK_SIZE" ]] || gdie "export has the wrong size"
	cmp <(dd if="$WORK/export.raw" bs=1M skip=$((PATTERN_OFF >> 20)) count=$((PATTERN_LEN >> 20)) status=none) \
		"$data/pattern.bin" >&2 || gdie "the pattern the guest wrote is not in the image"
	local n=0 off len want got
	while read -r off len want; do
		got=$(dd if="$WORK/export.raw" iflag=skip_bytes,count_bytes bs=1M skip="$off" count="$len" \
			status=none | sha256sum | cut -d' ' -f1)
		[[ $got == "$want" ]] || gdie "fio region at $off: image $got, guest read $want"
		n=$((n + 1))
	done < <(guest_report SUM)
	((n == 2)) || gdie "the guest reported $n region sums, want 2"
	glog "rbd export: the guest's pattern and both fio regions match"
	rbd -c "$CEPH_CONF" rm "rbd/$img" >/dev/null 2>&1 || true
}

main "$@"

#!/usr/bin/env bash
# scsi-basic: one vhost-user-scsi-pci controller with three LUNs on vhostd.
# The guest must see three sd disks on one SCSI host with the sizes, block
# sizes, serials and read-only flag the command line set, write data at
# several offsets (checked on the host after shutdown), switch cache_type in
# sysfs (MODE SELECT), discard a range (UNMAP), and fail to write the
# read-only LUN, whose image must come out unchanged.
#
# vhostd only (QEMU's own scsi-hd is not a vhost-user back-end), split rings
# only: QEMU 7.2's vhost-user-scsi does not pass VIRTIO_F_RING_PACKED on
# (tests/guest/README.md).
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

main() {
	if [[ $BACKEND != vhostd ]]; then
		glog "skipped: BACKEND=$BACKEND has no virtio-scsi"
		exit 77
	fi
	if ((PACKED)); then
		glog "skipped: QEMU 7.2's vhost-user-scsi cannot negotiate packed rings"
		exit 77
	fi
	require_backend
	guest_workdir
	local a=$WORK/a.img b=$WORK/b.img c=$WORK/c.img data=$WORK/data sum_c off
	mkdir "$data"
	truncate -s 64M "$a"
	truncate -s 32M "$b"
	head -c $((16 << 20)) /dev/urandom >"$c"
	sum_c=$(sha256sum <"$c" | cut -d' ' -f1)
	echo "0 $((16 << 20)) $sum_c" >"$data/ranges-c.txt"
	head -c $((1 << 20)) /dev/urandom >"$data/pattern"

	SOCK=$WORK/vhost.sock
	"$VHOSTD_BIN" --scsi "id=sc0,socket=$SOCK,num-queues=$NUM_QUEUES" \
		--lun "scsi=sc0,target=0,lun=0,path=$a,serial=SCSI-DISK-A" \
		--lun "scsi=sc0,target=0,lun=1,path=$b,block-size=4096,serial=SCSI-DISK-B" \
		--lun "scsi=sc0,target=1,lun=0,path=$c,readonly=on,serial=SCSI-DISK-C" \
		"${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"
	GUEST_QEMU_DEVICES+=(-chardev "socket,id=c0,path=$SOCK"
		-device "vhost-user-scsi-pci,chardev=c0,num_queues=$NUM_QUEUES")
	boot_guest "$(dirname "$0")/guest.sh" "$data"
	stop_backend

	guest_report DISK | sed "s/^/[$CASE] /" >&2
	for off in 0 $((5 << 20)) $((63 << 20)); do
		cmp -s <(dd if="$a" bs=1M skip=$((off >> 20)) count=1 status=none) "$data/pattern" ||
			gdie "a.img at $off does not hold what the guest wrote"
	done
	for off in 0 $((31 << 20)); do
		cmp -s <(dd if="$b" bs=1M skip=$((off >> 20)) count=1 status=none) "$data/pattern" ||
			gdie "b.img at $off does not hold what the guest wrote"
	done
	# The guest wrote the pattern at 8 MiB, then discarded it (UNMAP).
	cmp -s <(dd if="$a" bs=1M skip=8 count=1 status=none) <(head -c $((1 << 20)) /dev/zero) ||
		gdie "a.img at 8 MiB is not zero after the guest's discard"
	[[ $(sha256sum <"$c" | cut -d' ' -f1) == "$sum_c" ]] || gdie "the read-only image changed"
}

main "$@"

#!/usr/bin/env bash
# scsi-oracle: QEMU's built-in virtio-scsi-pci + scsi-hd is the oracle.
# The same guest script sends the same raw CDBs (sg_raw) to a vhostd LUN
# and to a scsi-hd on the same image, size, block size and serial; the
# answers (status, data, sense key and code) are compared field by field
# (compare.py), allowing only the differences we mean to have: the INQUIRY
# strings, our extra NAA designator in VPD 0x83, DPOFUA (QEMU's dpofua=off)
# and the control mode page QEMU lacks.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

main() {
	if [[ $BACKEND != vhostd ]] || ((PACKED)); then
		glog "skipped: vhostd on split rings only"
		exit 77
	fi
	require_backend
	guest_workdir
	local img=$WORK/disk.img here
	here=$(cd "$(dirname "$0")" && pwd)
	truncate -s 64M "$img"

	SOCK=$WORK/vhost.sock
	"$VHOSTD_BIN" --scsi "id=sc0,socket=$SOCK,num-queues=1" \
		--lun "scsi=sc0,target=0,lun=0,path=$img,serial=ORACLE-SERIAL-1" \
		"${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"
	GUEST_QEMU_DEVICES=(-chardev "socket,id=c0,path=$SOCK"
		-device "vhost-user-scsi-pci,chardev=c0,num_queues=1")
	GUEST_LOG=$GUEST_LOG_DIR/$CASE-vhostd.log
	boot_guest "$here/guest.sh"
	stop_backend
	guest_report RAW >"$WORK/vhostd.txt"

	# shellcheck disable=SC2054 # QEMU's commas
	GUEST_QEMU_DEVICES=(-drive "file=$img,if=none,id=d0,format=raw,cache=writeback"
		-device virtio-scsi-pci,id=scsi0,num_queues=1
		-device "scsi-hd,drive=d0,bus=scsi0.0,channel=0,scsi-id=0,lun=0,serial=ORACLE-SERIAL-1")
	GUEST_LOG=$GUEST_LOG_DIR/$CASE-qemu.log
	boot_guest "$here/guest.sh"
	guest_report RAW >"$WORK/qemu.txt"

	"$here/compare.py" "$WORK/vhostd.txt" "$WORK/qemu.txt" | sed "s/^/[$CASE] /" >&2 ||
		gdie "vhostd's answers differ from QEMU's scsi-hd"
}

main "$@"

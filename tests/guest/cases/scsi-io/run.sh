#!/usr/bin/env bash
# scsi-io: a vhostd virtio-scsi controller with two request queues under a
# Linux guest: fio verify on both queues, ext4 with checksums across a
# remount, sg_reset -d (LOGICAL UNIT RESET) while writes run, and a LUN
# hot-added and hot-removed with vhostctl while the guest runs (it sees
# both through the event queue and REPORT LUNS); the hot-added image holds
# what the guest wrote.  Split rings only (tests/guest/README.md).
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

# Follow the console; add and remove LUN 0:1 when the guest asks.
hotplug_driver() {
	local ctl=$1 img=$2 i
	for ((i = 0; i < 3000; i++)); do
		if grep -aq 'REPORT HOTPLUG add' "$GUEST_LOG" 2>/dev/null; then
			"$REPO/build/vhostctl" --control "$ctl" scsi-add-lun sc0 0 1 "$img" \
				--serial HOTPLUG-1 >&2
			break
		fi
		sleep 0.1
	done
	for (( ; i < 3000; i++)); do
		if grep -aq 'REPORT HOTPLUG remove' "$GUEST_LOG" 2>/dev/null; then
			"$REPO/build/vhostctl" --control "$ctl" scsi-remove-lun sc0 0 1 >&2
			return 0
		fi
		sleep 0.1
	done
}

main() {
	if [[ $BACKEND != vhostd ]] || ((PACKED)); then
		glog "skipped: vhostd on split rings only"
		exit 77
	fi
	require_backend
	guest_workdir
	local img=$WORK/disk.img new=$WORK/new.img ctl=$WORK/control.sock hp sum
	truncate -s 256M "$img"
	truncate -s 16M "$new"

	SOCK=$WORK/vhost.sock
	"$VHOSTD_BIN" --scsi "id=sc0,socket=$SOCK,num-queues=2" \
		--lun "scsi=sc0,target=0,lun=0,path=$img" --control "$ctl" \
		"${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
	wait_for_socket "$SOCK" "$BACKEND_PID"
	GUEST_QEMU_DEVICES=(-chardev "socket,id=c0,path=$SOCK"
		-device "vhost-user-scsi-pci,chardev=c0,num_queues=2")
	GUEST_LOG=$GUEST_LOG_DIR/$CASE.log
	rm -f "$GUEST_LOG"
	hotplug_driver "$ctl" "$new" &
	hp=$!
	boot_guest "$(dirname "$0")/guest.sh" || {
		kill $hp 2>/dev/null
		sed "s/^/[$CASE] vhostd | /" "$WORK/backend.log" | tail -n 40 >&2
		return 1
	}
	wait $hp || true
	"$REPO/build/vhostctl" --control "$ctl" stats | sed "s/^/[$CASE] /" >&2
	stop_backend

	sum=$(guest_report NEWSUM)
	[[ $(dd if="$new" bs=64k skip=4 count=16 status=none | sha256sum | cut -d' ' -f1) == "$sum" ]] ||
		gdie "the hot-added image does not hold what the guest wrote"
}

main "$@"

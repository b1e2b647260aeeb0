#!/usr/bin/env bash
# blk-ext4: a real file system on the device. The guest makes and fills an
# ext4 file system and re-reads it after a remount; the host then checks the
# image with e2fsck and extracts every file to compare with the guest's sums.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

main() {
	require_backend
	guest_workdir
	local here img
	here=$(dirname "$0")
	img=$WORK/disk.img
	truncate -s 256M "$img"

	start_backend "$img"
	blk_device "$SOCK"
	boot_guest "$here/guest.sh"
	stop_backend

	e2fsck -fn "$img" >"$WORK/fsck.log" 2>&1 || {
		cat "$WORK/fsck.log" >&2
		gdie "e2fsck found errors"
	}
	check_files "$img"
}

# Every file the guest reported must be in the image with the same sha256.
check_files() {
	local img=$1 want got n
	want=$WORK/want.sums
	guest_report SUM | sort -k2 >"$want"
	n=$(wc -l <"$want")
	((n > 200)) || gdie "guest reported only $n files"
	mkdir "$WORK/fs"
	# rdump prints per-inode chatter on stderr and exits 0 even on errors:
	# the checksum comparison below is what tells.
	debugfs -R "rdump / $WORK/fs" "$img" >/dev/null 2>&1
	got=$(cd "$WORK/fs" && sha256sum -c --quiet "$want" 2>&1) ||
		gdie "files in the image differ from what the guest wrote: $got"
	glog "$n files match on the host"
}

main "$@"

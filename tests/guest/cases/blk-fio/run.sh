#!/usr/bin/env bash
# blk-fio: fio write-and-verify in the guest (crc32c in every block), two
# concurrent jobs so both virtqueues are busy.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

main() {
	require_backend
	guest_workdir
	local img=$WORK/disk.img
	truncate -s 128M "$img"

	start_backend "$img"
	blk_device "$SOCK"
	boot_guest "$(dirname "$0")/guest.sh"
	stop_backend
}

main "$@"

#!/usr/bin/env bash
# blk-data: data integrity through the back-end, byte for byte.
# The host pre-writes random data, the guest reads it back and writes its own
# plan with O_DIRECT from both vCPUs, and the host compares the whole image
# with the one plan.py predicted.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

DISK_SIZE=$((512 << 20))

main() {
	require_backend
	guest_workdir
	local here img expected data
	here=$(dirname "$0")
	img=$WORK/disk.img
	expected=$WORK/expected.img
	data=$WORK/data

	truncate -s "$DISK_SIZE" "$img"
	python3 "$here/plan.py" "$img" "$expected" "$data" "${SEED:-1}"
	echo "$DISK_SIZE" >"$data/disk_size"
	echo "$NUM_QUEUES" >"$data/num_queues"

	start_backend "$img"
	blk_device "$SOCK"
	boot_guest "$here/guest.sh" "$data"
	stop_backend

	if ! cmp "$img" "$expected" >&2; then
		gdie "image differs from the expected one"
	fi
}

main "$@"

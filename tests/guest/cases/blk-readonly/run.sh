#!/usr/bin/env bash
# blk-readonly: a read-only export. The guest must see a read-only disk with
# the host's data on it, its writes must fail, and the image must come out
# bit-identical.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

main() {
	require_backend
	guest_workdir
	local img=$WORK/disk.img data=$WORK/data size=$((32 << 20)) before after
	mkdir "$data"
	head -c "$size" /dev/urandom >"$img"
	before=$(sha256sum <"$img" | cut -d' ' -f1)
	# Whole disk, first and last block: what a read-only guest may still do.
	# (Small: sha256 in the guest runs at TCG speed.)
	{
		echo "0 $size $before"
		echo "0 4096 $(head -c 4096 "$img" | sha256sum | cut -d' ' -f1)"
		echo "$((size - 4096)) 4096 $(tail -c 4096 "$img" | sha256sum | cut -d' ' -f1)"
	} >"$data/ranges.txt"

	start_backend "$img" ro
	blk_device "$SOCK"
	boot_guest "$(dirname "$0")/guest.sh" "$data"
	stop_backend

	guest_report WRITE_ERR | sed "s/^/[$CASE] refused: /" >&2
	after=$(sha256sum <"$img" | cut -d' ' -f1)
	[[ $before == "$after" ]] || gdie "the read-only image changed"
}

main "$@"

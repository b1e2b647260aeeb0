#!/usr/bin/env bash
# blk-discard: guest discards must reach the image as punched holes, write
# zeroes must read back as zeroes, and nothing around them may change.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

MiB=$((1 << 20))
SIZE=$((64 * MiB))
DISCARD_OFF=$((8 * MiB)) DISCARD_LEN=$((32 * MiB))
ZERO_OFF=$((48 * MiB)) ZERO_LEN=$((4 * MiB))

main() {
	require_backend
	guest_workdir
	local img=$WORK/disk.img data=$WORK/data blocks_before blocks_after
	mkdir "$data"
	# Fully allocated, non-zero data, so a punched hole shows in st_blocks.
	head -c "$SIZE" /dev/urandom >"$img"
	cp "$img" "$WORK/orig.img"
	echo "$DISCARD_OFF $DISCARD_LEN $ZERO_OFF $ZERO_LEN" >"$data/ranges"
	blocks_before=$(stat -c %b "$img")

	start_backend "$img" discard
	blk_device "$SOCK"
	boot_guest "$(dirname "$0")/guest.sh" "$data"
	stop_backend

	blocks_after=$(stat -c %b "$img")
	glog "allocated 512-byte blocks: $blocks_before -> $blocks_after;" \
		"guest queue: discard_max $(guest_report DISCARD_MAX)," \
		"write_zeroes_max $(guest_report WRITE_ZEROES_MAX)"
	# Less than the whole range is fine: punching a hole in the middle of
	# an extent can cost the host file system a new extent tree block.
	((blocks_before - blocks_after >= (DISCARD_LEN - MiB) / 512)) ||
		gdie "discarding $DISCARD_LEN bytes freed only $(((blocks_before - blocks_after) * 512)) bytes"
	check_image "$img" "$WORK/orig.img"
}

# The discarded range is a hole (SEEK_HOLE finds it at its start, SEEK_DATA
# beyond its end); both ranges read as zeroes; all else is as before.
check_image() {
	python3 - "$1" "$2" "$DISCARD_OFF" "$DISCARD_LEN" "$ZERO_OFF" "$ZERO_LEN" <<'PY'
import os, sys
img, orig = sys.argv[1:3]
doff, dlen, zoff, zlen = map(int, sys.argv[3:7])
fd = os.open(img, os.O_RDONLY)
hole = os.lseek(fd, doff, os.SEEK_HOLE)
data = os.lseek(fd, doff, os.SEEK_DATA)
if hole != doff or data < doff + dlen:
    sys.exit(f"no hole over the discarded range: SEEK_HOLE {hole}, SEEK_DATA {data}")
a, b = open(img, "rb").read(), open(orig, "rb").read()
for off, length, what in ((doff, dlen, "discarded"), (zoff, zlen, "zeroed")):
    if a[off:off + length].count(0) != length:
        sys.exit(f"{what} range [{off}, {off + length}) is not all zeroes")
for lo, hi in ((0, doff), (doff + dlen, zoff), (zoff + zlen, len(b))):
    if a[lo:hi] != b[lo:hi]:
        sys.exit(f"data outside the discarded ranges changed in [{lo}, {hi})")
PY
}

main "$@"

# shellcheck shell=sh
# blk-discard, guest side: discard one range and zero another; the host then
# checks the first became a hole in the image and the second reads as zeroes.
# Offsets come from /data/ranges: "DISCARD_OFF DISCARD_LEN ZERO_OFF ZERO_LEN".
DEV=/dev/vda
wait_dev $DEV

q=/sys/block/vda/queue
report DISCARD_MAX "$(cat $q/discard_max_bytes)"
report DISCARD_GRANULARITY "$(cat $q/discard_granularity)"
report WRITE_ZEROES_MAX "$(cat $q/write_zeroes_max_bytes)"
[ "$(cat $q/discard_max_bytes)" -gt 0 ] || fail "no discard support (VIRTIO_BLK_F_DISCARD not offered?)"

read -r doff dlen zoff zlen </data/ranges
blkdiscard -o "$doff" -l "$dlen" $DEV || fail "blkdiscard failed"
# -z is BLKZEROOUT: a WRITE_ZEROES request when the device offers it.
blkdiscard -z -o "$zoff" -l "$zlen" $DEV || fail "blkdiscard -z failed"
[ "$(sha256_range $DEV "$zoff" "$zlen")" = "$(head -c "$zlen" /dev/zero | sha256sum | cut -d' ' -f1)" ] ||
	fail "zeroed range does not read back as zeroes"

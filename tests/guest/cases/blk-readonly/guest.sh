# shellcheck shell=sh
# blk-readonly, guest side: the device must show up read-only, read back the
# host's data, and refuse writes, including once the guest has cleared its
# own read-only flag (then only the back-end stands in the way).
DEV=/dev/vda
wait_dev $DEV

[ "$(cat /sys/block/vda/ro)" = 1 ] || fail "/sys/block/vda/ro is not 1 (VIRTIO_BLK_F_RO not offered?)"
check_ranges $DEV /data/ranges.txt

# try_write LABEL DD-ARGS...: the write must fail.
try_write() {
	label=$1
	shift
	if dd if=/dev/zero of=$DEV bs=4k count=1 conv=notrunc status=none "$@" 2>/tmp/dd.err; then
		fail "$label write to the read-only device succeeded"
	fi
	report WRITE_ERR "$label: $(cat /tmp/dd.err)"
}

try_write direct oflag=direct
try_write buffered conv=fsync
try_write offset oflag=direct,seek_bytes seek=1048576

# Linux keeps the disk read-only as long as the driver says so, whatever
# BLKROSET does; if this kernel let it through, the back-end must refuse.
blockdev --setrw $DEV 2>/dev/null || true
try_write after-setrw oflag=direct

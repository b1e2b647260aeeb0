# shellcheck shell=sh
# Guest side of `make run` (scripts/run-demo.sh): show what the guest sees of
# the vhost-user disk and move some data through it.
DEV=/dev/vda
wait_dev $DEV

section() { printf '\n===== %s =====\n' "$*"; }

# Names of the feature bits this demo may meet (virtio 1.2, 2.2 and 5.2.3).
feature_name() {
	case $1 in
	1) echo SIZE_MAX ;; 2) echo SEG_MAX ;; 4) echo GEOMETRY ;; 5) echo RO ;;
	6) echo BLK_SIZE ;; 9) echo FLUSH ;; 10) echo TOPOLOGY ;; 11) echo CONFIG_WCE ;;
	12) echo MQ ;; 13) echo DISCARD ;; 14) echo WRITE_ZEROES ;;
	24) echo NOTIFY_ON_EMPTY ;; 27) echo ANY_LAYOUT ;; 28) echo RING_INDIRECT_DESC ;;
	29) echo RING_EVENT_IDX ;; 32) echo VERSION_1 ;; 33) echo ACCESS_PLATFORM ;;
	34) echo RING_PACKED ;; 35) echo IN_ORDER ;; 36) echo ORDER_PLATFORM ;;
	37) echo SR_IOV ;; 38) echo NOTIFICATION_DATA ;; 40) echo RING_RESET ;;
	*) echo "bit$1" ;;
	esac
}

section "block devices"
lsblk -o NAME,SIZE,RO,TYPE,PHY-SEC,LOG-SEC,MIN-IO,DISC-MAX,WSAME $DEV

section "/sys/block/vda/queue (highlights)"
for f in logical_block_size physical_block_size max_sectors_kb max_hw_sectors_kb \
	max_segments max_segment_size nr_requests discard_max_bytes \
	write_zeroes_max_bytes write_cache rotational; do
	printf '  %-24s %s\n' "$f" "$(cat /sys/block/vda/queue/$f)"
done
printf '  %-24s %s\n' "blk-mq hardware queues" "$(ls /sys/block/vda/mq | wc -l)"

section "negotiated virtio features"
for d in /sys/bus/virtio/devices/*; do
	names=
	for bit in $(awk '{ for (i = 1; i <= length($0); i++) if (substr($0, i, 1) == "1") print i - 1 }' "$d/features"); do
		names="$names $(feature_name "$bit")"
	done
	echo "  ${d##*/} (device id $(cat "$d/device")):$names"
done

section "sequential write, 1 MiB O_DIRECT, 128 MiB"
dd if=/dev/zero of=$DEV bs=1M count=128 oflag=direct conv=fsync 2>&1 | tail -n 1
section "sequential read, 1 MiB O_DIRECT, 128 MiB"
dd if=$DEV of=/dev/null bs=1M count=128 iflag=direct 2>&1 | tail -n 1
section "4 KiB O_DIRECT writes, 16 MiB"
dd if=/dev/zero of=$DEV bs=4k count=4096 oflag=direct 2>&1 | tail -n 1
section "4 KiB O_DIRECT reads, 16 MiB"
dd if=$DEV of=/dev/null bs=4k count=4096 iflag=direct 2>&1 | tail -n 1
echo
log "demo done (speeds are under TCG emulation, not native)"

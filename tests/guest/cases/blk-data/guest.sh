# shellcheck shell=sh
# blk-data, guest side: read back with O_DIRECT what the host wrote, write a
# deterministic plan with O_DIRECT from both vCPUs, read that back. The host
# then compares the whole image with the one it expects (see plan.py).
DEV=/dev/vda
wait_dev $DEV

size=$(($(cat /sys/block/vda/size) * 512))
[ "$size" -eq "$(cat /data/disk_size)" ] || fail "disk is $size bytes, want $(cat /data/disk_size)"
queues=$(ls /sys/block/vda/mq | wc -l)
[ "$queues" -eq "$(cat /data/num_queues)" ] || fail "$queues blk-mq queues, want $(cat /data/num_queues)"

# write_list CPU: that vCPU's lines of writes.txt, in order.
write_list() {
	while read -r cpu off len src; do
		[ "$cpu" = "$1" ] || continue
		taskset -c "$cpu" /usr/bin/dd if=/data/pattern.bin of=$DEV bs="$len" count=1 \
			iflag=skip_bytes skip="$src" oflag=seek_bytes,direct seek="$off" \
			conv=notrunc status=none || fail "write of $len bytes at $off failed"
	done </data/writes.txt
}

log "reading $(wc -l </data/reads.txt) host-written ranges"
on_both_cpus check_ranges $DEV /data/reads.txt
log "writing $(wc -l </data/writes.txt) ranges"
on_both_cpus write_list
log "reading back the written ranges"
on_both_cpus check_ranges $DEV /data/final.txt

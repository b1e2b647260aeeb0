# shellcheck shell=sh
# blk-rbd, guest side: the disk is an RBD image. Write the host's pattern
# with O_DIRECT (half from each vCPU), run two fio verify jobs at once (one
# per vCPU, so per queue), then report the sha256 of each fio region as
# read back with O_DIRECT; the host compares them with `rbd export`.
DEV=/dev/vda
wait_dev $DEV
read -r size poff plen </data/layout
[ $(($(cat /sys/block/vda/size) * 512)) -eq "$size" ] || fail "disk is not $size bytes"
queues=$(ls /sys/block/vda/mq | wc -l)
[ "$queues" -eq "$(cat /data/num_queues)" ] || fail "$queues blk-mq queues, want $(cat /data/num_queues)"

half=$((plen / 2))
write_half() {
	taskset -c "$1" /usr/bin/dd if=/data/pattern.bin of=$DEV bs=64K \
		iflag=skip_bytes,count_bytes skip=$(($1 * half)) count=$half \
		oflag=seek_bytes,direct seek=$((poff + $1 * half)) conv=notrunc status=none ||
		fail "pattern write on vCPU $1 failed"
}
on_both_cpus write_half
want=$(sha256sum </data/pattern.bin | cut -d' ' -f1)
[ "$(sha256_range $DEV "$poff" "$plen")" = "$want" ] || fail "pattern read back wrong"

cat >/tmp/verify.fio <<JOB
[global]
filename=$DEV
direct=1
ioengine=libaio
iodepth=16
verify=crc32c
do_verify=1
verify_fatal=1
verify_dump=0
randrepeat=1
size=24M

[rand4k]
cpus_allowed=0
rw=randwrite
bs=4k
offset=0

[mixed]
cpus_allowed=1
rw=randwrite
bsrange=4k-256k
offset=64M
JOB
fio --output-format=normal /tmp/verify.fio >/tmp/fio.out 2>&1 || {
	cat /tmp/fio.out
	fail "fio exited with an error (see log)"
}
grep -E 'err=|IOPS' /tmp/fio.out || true
[ "$(grep -c 'err= 0' /tmp/fio.out)" -eq 2 ] || fail "a fio job reported errors"
for off in 0 $((64 << 20)); do
	report SUM "$off $((24 << 20)) $(sha256_range $DEV "$off" $((24 << 20)))"
done

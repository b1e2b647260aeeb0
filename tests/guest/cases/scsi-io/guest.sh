# shellcheck shell=sh
# scsi-io, guest side: fio verify on both request queues, ext4 with
# checksums, sg_reset (LUN reset) while writes run, then a LUN the host
# hot-adds (written and read back) and hot-removes (gone).
i=0
while [ ! -e /sys/class/scsi_disk/0:0:0:0 ]; do
	i=$((i + 1))
	[ "$i" -le 200 ] || fail "no SCSI disk 0:0:0:0"
	sleep 0.1
done
DEV=/dev/$(ls /sys/class/scsi_disk/0:0:0:0/device/block)
wait_dev $DEV

# 1. fio verify, one job per vCPU, so per request queue.
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
size=16M

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
	fail "fio exited with an error"
}
[ "$(grep -c 'err= 0' /tmp/fio.out)" -eq 2 ] || fail "a fio job reported errors"
log "fio verify: ok"

# 2. sg_reset while writes run: the writes finish (or fail and are retried
# by the SCSI layer), nothing hangs, and what is written afterwards reads back.
if command -v sg_reset >/dev/null; then
	dd if=/dev/urandom of=/tmp/pat bs=64k count=16 status=none
	dd if=/dev/zero of=$DEV bs=64k count=1500 seek=2000 oflag=direct status=none &
	ddpid=$!
	sleep 0.3
	sg_reset -d $DEV || fail "sg_reset -d failed"
	wait $ddpid || log "dd during the reset: exit $? (allowed)"
	dd if=/tmp/pat of=$DEV bs=64k seek=100 oflag=direct conv=notrunc status=none
	[ "$(dd if=$DEV bs=64k skip=100 count=16 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum </tmp/pat)" ] || fail "data after the LUN reset reads back wrong"
	log "sg_reset -d during writes: ok"
fi

# 3. ext4: files and their checksums survive a remount.
mkfs.ext4 -q -F -E nodiscard -O ^has_journal $DEV 2>/dev/null || mkfs.ext4 -q -F $DEV ||
	fail "mkfs.ext4"
mkdir -p /mnt
mount -t ext4 $DEV /mnt || fail "mount"
for n in 1 2 3 4 5 6 7 8; do
	dd if=/dev/urandom of=/mnt/f$n bs=64k count=$n status=none
done
(cd /mnt && sha256sum f*) >/tmp/sums
umount /mnt
echo 3 >/proc/sys/vm/drop_caches
mount -t ext4 $DEV /mnt || fail "remount"
(cd /mnt && sha256sum -c /tmp/sums >/dev/null) || fail "ext4 files changed across a remount"
umount /mnt
log "ext4: ok"

# 4. Hot-add: the host adds LUN 0:1 when it sees this line.
report HOTPLUG add
i=0
while [ ! -e /sys/class/scsi_disk/0:0:0:1 ]; do
	i=$((i + 1))
	if [ "$i" -gt 600 ]; then
		dmesg | tail -n 15
		ls /sys/class/scsi_device
		fail "the hot-added LUN did not appear"
	fi
	sleep 0.1
done
NEW=/dev/$(ls /sys/class/scsi_disk/0:0:0:1/device/block)
wait_dev $NEW
dd if=/dev/urandom of=/tmp/pat2 bs=64k count=16 status=none
dd if=/tmp/pat2 of=$NEW bs=64k seek=4 oflag=direct conv=notrunc status=none || fail "write the new LUN"
[ "$(dd if=$NEW bs=64k skip=4 count=16 iflag=direct status=none | sha256sum)" = \
	"$(sha256sum </tmp/pat2)" ] || fail "the new LUN reads back wrong"
report NEWSUM "$(sha256sum </tmp/pat2 | cut -d' ' -f1)"
sync
# Hot-remove: the host removes it when it sees this line.
report HOTPLUG remove
i=0
while [ -e /sys/class/scsi_disk/0:0:0:1 ]; do
	i=$((i + 1))
	[ "$i" -le 600 ] || fail "the hot-removed LUN is still there"
	sleep 0.1
done
[ -e /sys/class/scsi_disk/0:0:0:0 ] || fail "LUN 0 went away too"
log "hot-add and hot-remove: ok"

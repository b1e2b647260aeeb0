# shellcheck shell=sh
# blk-ext4, guest side: make an ext4 file system, fill it, check the files
# survive an unmount/remount with the caches dropped, and report their sums
# so the host can check them once more from the image itself.
DEV=/dev/vda
wait_dev $DEV

mkfs.ext4 -q -F $DEV
mount -t ext4 $DEV /mnt

# A mix that exercises extents, directories and many small requests.
mkdir -p /mnt/dir/sub
dd if=/dev/urandom of=/mnt/big bs=1M count=24 status=none
dd if=/dev/urandom of=/mnt/dir/mid bs=64k count=33 status=none
for i in $(seq 1 200); do
	head -c $((i * 97)) /dev/urandom >"/mnt/dir/sub/f$i"
done
sync
(cd /mnt && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum) >/tmp/sums
umount /mnt

# Without this the remount could be served from the guest's page cache.
echo 3 >/proc/sys/vm/drop_caches
mount -t ext4 -o ro $DEV /mnt
(cd /mnt && sha256sum -c -s /tmp/sums) || fail "file contents changed across remount"
umount /mnt

log "$(wc -l </tmp/sums) files verified after remount"
while read -r sum name; do
	report SUM "$sum ${name#./}"
done </tmp/sums

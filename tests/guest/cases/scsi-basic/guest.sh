# shellcheck shell=sh
# scsi-basic, guest side: three LUNs of one virtio-scsi controller.

# /sys/class/scsi_disk/H:C:T:L -> sdX, once all three are there.
i=0
while [ "$(ls /sys/class/scsi_disk 2>/dev/null | wc -l)" -lt 3 ]; do
	i=$((i + 1))
	[ "$i" -le 200 ] || fail "fewer than 3 SCSI disks: $(ls /sys/class/scsi_disk 2>/dev/null)"
	sleep 0.1
done
[ "$(ls /sys/class/scsi_disk | wc -l)" = 3 ] || fail "not 3 SCSI disks: $(ls /sys/class/scsi_disk)"

# One SCSI host (one controller) for all three.
hosts=$(for d in /sys/class/scsi_disk/*; do h=${d##*/}; echo "${h%%:*}"; done | sort -u)
[ "$(echo "$hosts" | wc -l)" = 1 ] || fail "LUNs on different SCSI hosts: $hosts"
host=$hosts

# disk_of T:L -> sdX
disk_of() {
	for d in /sys/class/scsi_disk/*; do
		hctl=${d##*/}
		case $hctl in
		*:0:"$1") ;;
		*) continue ;;
		esac
		ls "$d/device/block"
		return 0
	done
	fail "no disk at target:lun $1"
}
A=$(disk_of 0:0)
B=$(disk_of 0:1)
C=$(disk_of 1:0)
for x in $A $B $C; do wait_dev /dev/$x; done
report DISK "A=$A B=$B C=$C host=$host"

check() { [ "$2" = "$3" ] || fail "$1: '$2', expected '$3'"; }

check "A size" "$(cat /sys/block/$A/size)" $((64 << 11))
check "B size" "$(cat /sys/block/$B/size)" $((32 << 11))
check "A block size" "$(cat /sys/block/$A/queue/logical_block_size)" 512
check "B block size" "$(cat /sys/block/$B/queue/logical_block_size)" 4096
check "C read-only" "$(cat /sys/block/$C/ro)" 1
check "A read-only" "$(cat /sys/block/$A/ro)" 0
for x in A:$A B:$B C:$C; do
	n=${x%%:*}
	dev=${x#*:}
	vpd=/sys/block/$dev/device/vpd_pg80
	[ -e "$vpd" ] || fail "no VPD page 0x80 for $dev"
	grep -q "SCSI-DISK-$n" "$vpd" || fail "$dev: serial is not SCSI-DISK-$n"
	grep -q "SCSI-DISK-$n" /sys/block/$dev/device/vpd_pg83 || fail "$dev: VPD 0x83 lacks the serial"
	grep -q "^VHOSTD" /sys/block/$dev/device/vendor || fail "$dev: vendor is not VHOSTD"
done
if command -v sg_inq >/dev/null; then
	sg_inq /dev/$A | grep -q "VHOSTD" || fail "sg_inq: no vendor"
	sg_readcap -l /dev/$B | grep -q "Logical block length=4096" || fail "sg_readcap: B is not 4K"
	sg_turs /dev/$A || fail "sg_turs failed"
fi
check "A provisioning" "$(cat /sys/block/$A/device/scsi_disk/*/provisioning_mode)" unmap

# Data at several offsets, read back with O_DIRECT; the host checks the images.
for off in 0 5 63; do
	dd if=/data/pattern of=/dev/$A bs=1M seek=$off oflag=direct conv=notrunc status=none ||
		fail "write A at ${off}M"
	[ "$(dd if=/dev/$A bs=1M skip=$off count=1 iflag=direct status=none | sha256sum)" = \
		"$(sha256sum </data/pattern)" ] || fail "A at ${off}M reads back wrong"
done
for off in 0 31; do
	dd if=/data/pattern of=/dev/$B bs=1M seek=$off oflag=direct conv=notrunc status=none ||
		fail "write B at ${off}M"
done

# cache_type: MODE SELECT of the caching page, read back by MODE SENSE.
ct=$(echo /sys/block/$A/device/scsi_disk/*/cache_type)
check "cache_type" "$(cat $ct)" "write back"
echo "write through" >$ct || fail "cannot set cache_type"
check "cache_type after" "$(cat $ct)" "write through"
dd if=/data/pattern of=/dev/$A bs=1M seek=8 oflag=direct conv=notrunc status=none
echo "write back" >$ct
check "cache_type back" "$(cat $ct)" "write back"

# Discard what was just written at 8 MiB: UNMAP; reads back as zeroes.
blkdiscard -o $((8 << 20)) -l $((1 << 20)) /dev/$A || fail "blkdiscard"
sync

# The read-only LUN: its data reads back, writes fail.
check_ranges /dev/$C /data/ranges-c.txt
if dd if=/dev/zero of=/dev/$C bs=4k count=1 oflag=direct conv=notrunc status=none 2>/dev/null; then
	fail "write to the read-only LUN succeeded"
fi
blockdev --setrw /dev/$C 2>/dev/null || true
if dd if=/dev/zero of=/dev/$C bs=4k count=1 oflag=direct conv=notrunc status=none 2>/dev/null; then
	fail "write to the read-only LUN succeeded after --setrw"
fi

# What the kernel made of it, for the console log.
dmesg | grep -iE " sd[a-c]|scsi|virtio_scsi" | sed 's/^/[dmesg] /' | head -n 60

# shellcheck shell=sh
# bench/scsi.sh's guest side: fio 4 KiB random reads on the one SCSI disk,
# QD32 and QD1, ten seconds each; one "REPORT FIO name iops" line each.
i=0
while [ ! -e /sys/class/scsi_disk/0:0:0:0 ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || fail "no SCSI disk"
	sleep 0.1
done
DEV=/dev/$(ls /sys/class/scsi_disk/0:0:0:0/device/block)
wait_dev $DEV
for qd in 32 1; do
	fio --name=qd$qd --filename=$DEV --direct=1 --ioengine=libaio --rw=randread --bs=4k \
		--iodepth=$qd --size=256M --time_based --runtime=10 --ramp_time=2 \
		--output-format=terse --terse-version=3 >/tmp/fio.out 2>&1 || {
		cat /tmp/fio.out
		fail "fio failed"
	}
	# terse v3: field 8 is read IOPS.
	report FIO "qd$qd $(cut -d';' -f8 /tmp/fio.out)"
done

# shellcheck shell=sh
# blk-nbd, guest side: the disk's features, then PASSES fio passes of
# random writes with crc32c in every block, each read back and verified
# (two jobs, one per vCPU), then the last pass verified once more. Any I/O
# error (the NBD server restarts under us) fails fio and the case.
DEV=/dev/vda
wait_dev $DEV
PASSES=$(cat /data/passes)
d=/sys/bus/virtio/devices/$(basename "$(readlink -f /sys/block/vda/device)")
for bit in 9:FLUSH 13:DISCARD 14:WRITE_ZEROES; do
	[ "$(virtio_feature "$d" "${bit%%:*}")" = 1 ] || fail "VIRTIO_BLK_F_${bit#*:} not offered"
done
log "flush, discard and write-zeroes offered"

job() { # PASS [verify_only]
	cat <<JOB
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
randseed=$((1000 + $1))
size=32M
${2:+verify_only=1}

[rand4k]
cpus_allowed=0
rw=randwrite
bs=4k
offset=0

[mixed]
cpus_allowed=1
rw=randwrite
bsrange=4k-128k
offset=48M
JOB
}

run_fio() { # PASS [verify_only]
	job "$@" >/tmp/job.fio
	fio --output-format=normal /tmp/job.fio >/tmp/fio.out 2>&1 || {
		cat /tmp/fio.out
		fail "pass $1${2:+ (verify only)}: fio exited with an error"
	}
	[ "$(grep -c 'err= 0' /tmp/fio.out)" -eq 2 ] || {
		cat /tmp/fio.out
		fail "pass $1: a fio job reported errors"
	}
}

p=0
while [ "$p" -lt "$PASSES" ]; do
	start=$(uptime_s)
	log "pass $p writing at ${start}s"
	run_fio $p
	end=$(uptime_s)
	log "pass $p verified at ${end}s"
	report PASS_SECONDS "$p $(echo "$start $end" | awk '{printf "%.2f", $2 - $1}')"
	p=$((p + 1))
done
log "reading the last pass back again"
run_fio $((PASSES - 1)) verify_only
log "last pass verified again"

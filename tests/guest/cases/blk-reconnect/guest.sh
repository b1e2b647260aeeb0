# shellcheck shell=sh
# blk-reconnect, guest side: PASSES passes over the first NCHUNK MiB of the
# disk. Pass p writes 1 MiB chunk i from pattern chunk (i + p) % NCHUNK with
# O_DIRECT in 128 KiB requests, then reads every chunk back and checks its sha256; both vCPUs do
# half of the chunks each, so both queues carry requests. The host restarts
# the back-end during some passes: the driver only sees requests that take
# longer, and every pass must still verify. The host compares the image
# after power-off (the last pass's layout).
DEV=/dev/vda
wait_dev $DEV
MiB=1048576
PASSES=$(cat /data/passes)
NCHUNK=$(wc -l </data/chunks.txt)

# write_pass PASS CPU: this vCPU's chunks, from the pattern, direct.
write_pass() {
	i=$2
	while [ "$i" -lt "$NCHUNK" ]; do
		src=$(((i + $1) % NCHUNK))
		taskset -c "$2" /usr/bin/dd if=/data/pattern.bin of=$DEV bs=128K count=8 \
			skip=$((src * 8)) seek=$((i * 8)) oflag=direct conv=notrunc status=none ||
			fail "pass $1: write of chunk $i failed"
		i=$((i + 2))
	done
}

# verify_pass PASS CPU: this vCPU's chunks read back from the device.
verify_pass() {
	i=$2
	while [ "$i" -lt "$NCHUNK" ]; do
		src=$(((i + $1) % NCHUNK))
		want=$(sed -n "$((src + 1))p" /data/chunks.txt)
		got=$(sha256_range $DEV $((i * MiB)) $MiB "$2")
		[ "$got" = "$want" ] ||
			fail "pass $1: chunk $i read back wrong ($got, want pattern chunk $src $want)"
		i=$((i + 2))
	done
}

p=0
while [ "$p" -lt "$PASSES" ]; do
	start=$(uptime_s)
	log "pass $p writing at ${start}s"
	on_both_cpus write_pass $p
	log "pass $p verifying at $(uptime_s)s"
	on_both_cpus verify_pass $p
	end=$(uptime_s)
	log "pass $p done at ${end}s"
	report PASS_SECONDS "$p $(echo "$start $end" | awk '{printf "%.2f", $2 - $1}')"
	p=$((p + 1))
done

# blk-crash: fio verify over [48 MiB, 80 MiB) at iodepth 64 per vCPU; the
# back-end kills itself in it with many requests in flight.
if [ -e /data/fio ]; then
	cat >/tmp/crash.fio <<JOB
[global]
filename=$DEV
direct=1
ioengine=libaio
iodepth=64
rw=randwrite
bs=4k
verify=crc32c
do_verify=1
verify_fatal=1
verify_dump=0
randrepeat=1
size=16M

[q0]
cpus_allowed=0
offset=48M

[q1]
cpus_allowed=1
offset=64M
JOB
	log "fio writing at $(uptime_s)s"
	fio --output-format=normal /tmp/crash.fio >/tmp/fio.out 2>&1 || {
		cat /tmp/fio.out
		fail "fio exited with an error (see log)"
	}
	grep -E 'err=|IOPS' /tmp/fio.out || true
	[ "$(grep -c 'err= 0' /tmp/fio.out)" -eq 2 ] || fail "a fio job reported errors"
	log "fio verified at $(uptime_s)s"
fi

# The driver must not have given up on a request while the back-end was away.
if dmesg | grep -E -i 'I/O error|blk_update_request|timeout|virtio_blk.*(error|fail)'; then
	fail "the kernel logged block errors (see above)"
fi

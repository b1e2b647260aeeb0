# shellcheck shell=sh
# bench/soak.sh, guest side (the same on the blk and the scsi guest): mixed
# I/O for /data/seconds seconds, every write verified, in generations.
#
#   - both vCPUs (so both queues) rewrite the first NCHUNK MiB of the disk in
#     passes: pass p writes chunk i from pattern chunk (i + p) % NCHUNK with
#     O_DIRECT, in requests of 4 KiB to 1 MiB (the size changes per pass
#     and per vCPU), then reads every chunk back and checks its sha256;
#   - meanwhile fio writes random 4..256 KiB blocks with crc32c checksums over
#     another region and reads them all back (verify), again and again.
#
# The host kills, restarts and migrates the back-end under it (blk guest)
# or watches its daemon (scsi guest).  Any read that comes back wrong, any
# fio error and any block error in the kernel log fails the guest.  The last
# pass is reported (REPORT LAST_PASS) so the host can compare the image.
DEV=$(cat /data/dev)
wait_dev "$DEV"
MiB=1048576
SECONDS_TOTAL=$(cat /data/seconds)
NCHUNK=$(wc -l </data/chunks.txt)
FIO_OFFSET=$(cat /data/fio-offset)

# Request sizes, by pass and vCPU: small requests mean many in flight.
BS_LIST="4096 16384 65536 131072 1048576 8192 262144 32768"

bs_of() {
	n=$((($1 * 3 + $2) % 8 + 1))
	echo "$BS_LIST" | cut -d' ' -f"$n"
}

write_pass() {
	bs=$(bs_of "$1" "$2")
	per=$((MiB / bs))
	i=$2
	while [ "$i" -lt "$NCHUNK" ]; do
		src=$(((i + $1) % NCHUNK))
		taskset -c "$2" /usr/bin/dd if=/data/pattern.bin of="$DEV" bs="$bs" count="$per" \
			skip=$((src * per)) seek=$((i * per)) oflag=direct conv=notrunc status=none ||
			fail "pass $1: write of chunk $i (bs $bs) failed"
		i=$((i + 2))
	done
}

verify_pass() {
	i=$2
	while [ "$i" -lt "$NCHUNK" ]; do
		src=$(((i + $1) % NCHUNK))
		want=$(sed -n "$((src + 1))p" /data/chunks.txt)
		got=$(sha256_range "$DEV" $((i * MiB)) $MiB "$2")
		[ "$got" = "$want" ] ||
			fail "pass $1: chunk $i read back wrong ($got, want pattern chunk $src)"
		i=$((i + 2))
	done
}

cat >/tmp/mix.fio <<JOB
[global]
filename=$DEV
direct=1
ioengine=libaio
iodepth=8
verify=crc32c
do_verify=1
verify_fatal=1
verify_dump=0
offset=$FIO_OFFSET
size=8M

[mix]
rw=randwrite
bsrange=4k-256k
JOB

# fio_loop: until the end, one verified fio run after the other.
fio_loop() {
	n=0
	while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
		fio --output-format=normal /tmp/mix.fio >/tmp/fio.out 2>&1 || {
			cat /tmp/fio.out
			echo "fio run $n failed" >/tmp/fio.failed
			return 1
		}
		grep -q 'err= 0' /tmp/fio.out || {
			cat /tmp/fio.out
			echo "fio run $n reported an error" >/tmp/fio.failed
			return 1
		}
		n=$((n + 1))
		echo "$n" >/tmp/fio.runs
	done
}

start=$(cut -d. -f1 /proc/uptime)
end=$((start + SECONDS_TOTAL))
log "soak start at ${start}s, for ${SECONDS_TOTAL}s on $DEV"
echo 0 >/tmp/fio.runs
fio_loop &
fio_pid=$!
p=0
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
	[ ! -e /tmp/fio.failed ] || fail "$(cat /tmp/fio.failed)"
	t0=$(uptime_s)
	on_both_cpus write_pass $p
	on_both_cpus verify_pass $p
	log "pass $p verified ($(uptime_s)s, started ${t0}s)"
	p=$((p + 1))
done
wait "$fio_pid" || fail "$(cat /tmp/fio.failed 2>/dev/null || echo 'fio loop failed')"
report LAST_PASS $((p - 1))
report PASSES "$p"
report FIO_RUNS "$(cat /tmp/fio.runs)"
if dmesg | grep -E -i 'I/O error|blk_update_request|timeout|virtio_blk.*(error|fail)|sd .*(error|fail)'; then
	fail "the kernel logged block errors (see above)"
fi
log "soak done: $p passes, $(cat /tmp/fio.runs) fio runs"

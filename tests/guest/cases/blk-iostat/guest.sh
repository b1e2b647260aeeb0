# shellcheck shell=sh
# blk-iostat, guest side: a steady fio load, and iostat's columns for vda
# computed from /proc/diskstats over an 8 s window (the host measures the
# same window with vhostctl iostat; see run.sh).
DEV=/dev/vda
wait_dev $DEV

# --eta=never and stdout to a file: fio's progress line would otherwise share
# the console with the REPORT lines the host reads.
fio --name=steady --filename=$DEV --direct=1 --ioengine=libaio --iodepth=4 \
	--rw=randrw --bs=4k --rate_iops=150,150 --time_based --runtime=22 --size=64M \
	--eta=never --output=/tmp/fio.out >/tmp/fio.stdout 2>&1 &
FIO=$!
sleep 6 # past fio's start-up

# uptime (s), then diskstats fields 4..14 of vda.
snap() { echo "$(cut -d' ' -f1 /proc/uptime) $(awk '$3 == "vda" { print $4, $6, $7, $8, $10, $11, $13, $14 }' /proc/diskstats)"; }
S0=$(snap)
report "IOSTAT start"
sleep 8
S1=$(snap)
echo "diskstats window: $S0 -> $S1"
report "GUESTIOSTAT $(echo "$S0 $S1" | awk '{
	t = $10 - $1; ms = t * 1000
	r = $11 - $2; rs = $12 - $3; rt = $13 - $4
	w = $14 - $5; ws = $15 - $6; wt = $16 - $7
	io = $17 - $8; tiq = $18 - $9
	printf "r/s=%.2f w/s=%.2f rkB/s=%.2f wkB/s=%.2f r_await=%.3f w_await=%.3f aqu-sz=%.3f %%util=%.2f",
		r / t, w / t, rs / 2 / t, ws / 2 / t, r ? rt / r : 0, w ? wt / w : 0, tiq / ms, io / ms * 100
}')"
wait $FIO || {
	cat /tmp/fio.out /tmp/fio.stdout
	fail "fio failed"
}
grep -E 'IOPS' /tmp/fio.out || true

# shellcheck shell=sh
# blk-migrate, guest side: migverify (built on the host, in /data) writes
# known data and reads it back with O_DIRECT into buffers only the device
# writes, checking each read at once and the whole buffer again after every
# pass. The host migrates the guest to a second QEMU and vhostd meanwhile,
# then writes a marker into the image at /data/control; three passes later
# (or after /data/seconds at most) migverify stops. Any stale page shows up
# as a failed check.
DEV=/dev/vda
wait_dev $DEV
secs=$(cat /data/seconds)
log "migverify on $DEV for ${secs}s"
rm -f /tmp/mv.rc
# sh -e: the status is caught with ||, or a failure would end the group
# before it is written down.
{
	rc=0
	/data/migverify $DEV "$(cat /data/control)" "$secs" 2>&1 || rc=$?
	echo $rc >/tmp/mv.rc
} | tee /tmp/mv.out
[ "$(cat /tmp/mv.rc)" = 0 ] ||
	fail "$(grep -m1 -E 'STALE|wrong|failed' /tmp/mv.out || tail -n 1 /tmp/mv.out)"

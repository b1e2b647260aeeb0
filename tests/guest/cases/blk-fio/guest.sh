# shellcheck shell=sh
# blk-fio, guest side: fio writes with checksummed blocks and reads them all
# back (--verify). Two jobs run at once, one per vCPU, so both virtqueues
# carry requests: small random 4 KiB writes at queue depth 16, and mixed
# 4 KiB..256 KiB writes over a separate region.
DEV=/dev/vda
wait_dev $DEV

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
size=32M

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

# shellcheck shell=sh
# scsi-oracle, guest side: send the same raw CDBs to the one SCSI disk and
# print status, sense and data in hex; the host compares two boots.
command -v sg_raw >/dev/null || fail "sg_raw is not in the initramfs (install sg3-utils)"
i=0
while [ ! -e /dev/sg0 ] || [ ! -e /sys/class/scsi_disk/0:0:0:0 ]; do
	i=$((i + 1))
	[ "$i" -le 200 ] || fail "no SCSI disk"
	sleep 0.1
done

# raw NAME ALLOC CDB-BYTES...: one line "REPORT RAW NAME STATUS DATA SENSE".
raw() {
	name=$1
	alloc=$2
	shift 2
	rm -f /tmp/out
	if [ "$alloc" -gt 0 ]; then
		sg_raw -R -r "$alloc" -o /tmp/out /dev/sg0 "$@" >/tmp/err 2>&1 || true
	else
		sg_raw -R /dev/sg0 "$@" >/tmp/err 2>&1 || true
	fi
	st=$(sed -n 's/^SCSI Status: //p' /tmp/err | head -n 1 | tr ' ' '_')
	key=$(sed -n 's/.*Sense key: //p' /tmp/err | head -n 1 | tr ' ' '_')
	asc=$(sed -n 's/.*Additional sense: //p' /tmp/err | head -n 1 | tr ' ' '_')
	data=-
	[ ! -s /tmp/out ] || data=$(od -An -tx1 -v /tmp/out | tr -d ' \n')
	echo "REPORT RAW $name ${st:-Good} $data ${key:--}/${asc:--}"
}

raw tur 0 00 00 00 00 00 00
raw inquiry36 36 12 00 00 00 24 00
raw inquiry96 96 12 00 00 00 60 00
raw vpd00 255 12 01 00 00 ff 00
raw vpd80 255 12 01 80 00 ff 00
raw vpd83 255 12 01 83 00 ff 00
raw vpdb0 255 12 01 b0 00 ff 00
raw vpdb1 255 12 01 b1 00 ff 00
raw vpdb2 255 12 01 b2 00 ff 00
raw vpd99 255 12 01 99 00 ff 00
raw inq-page-no-evpd 36 12 00 80 00 24 00
raw readcap10 8 25 00 00 00 00 00 00 00 00 00
raw readcap16 32 9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00
raw readcap10-lba 8 25 00 00 00 00 01 00 00 00 00
raw modesense6-p8 255 1a 08 08 00 ff 00
raw modesense6-p8-bd 255 1a 00 08 00 ff 00
raw modesense10-p8 255 5a 00 08 00 00 00 00 00 ff 00
raw modesense6-p1 255 1a 00 01 00 ff 00
raw modesense6-p4 255 1a 00 04 00 ff 00
raw modesense6-p5 255 1a 00 05 00 ff 00
raw modesense6-all 255 1a 00 3f 00 ff 00
raw modesense6-p8-changeable 255 1a 08 48 00 ff 00
raw modesense6-saved 255 1a 08 c8 00 ff 00
raw modesense6-p1c 255 1a 08 1c 00 ff 00
raw reportluns 256 a0 00 00 00 00 00 00 00 01 00 00 00
raw reportluns-short 8 a0 00 00 00 00 00 00 00 00 08 00 00
raw requestsense 18 03 00 00 00 12 00
raw read10-range 512 28 00 00 01 ff ff 00 00 01 00
raw read10-rdprotect 512 28 20 00 00 00 00 00 00 01 00
raw read16 512 88 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00
raw read10-zero 0 28 00 00 00 00 00 00 00 00 00
raw verify10 0 2f 00 00 00 00 00 00 00 08 00
raw verify10-bytchk 0 2f 02 00 00 00 00 00 00 00 00
raw synccache10 0 35 00 00 00 00 00 00 00 00 00
raw startstop 0 1b 00 00 00 01 00
raw unknown-opcode 0 c0 00 00 00 00 00
raw seek10-range 0 2b 00 00 01 ff ff 00 00 00 00
raw sai-unknown 32 9e 11 00 00 00 00 00 00 00 00 00 00 00 20 00 00

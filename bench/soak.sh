#!/usr/bin/env bash
# The soak of issue 9: MINUTES (default 10) of mixed, verified guest I/O on
# virtio-blk and virtio-scsi served by vhostd, with the blk daemon killed
# (SIGKILL) and restarted every minute and the blk guest live-migrated every
# MIGRATE_EVERY (default 3) minutes, watching the daemons' RSS and
# descriptor counts.
#
#   bench/soak.sh [MINUTES]            the soak (needs QEMU and the guest kernel)
#   bench/soak.sh --stress [MINUTES]   the old long runs instead: ring stress,
#                                      every fuzz harness, guest fio, repeated
#
# Two guests (QEMU TCG, 2 vCPUs each), because QEMU 7.2's vhost-user-scsi
# cannot reconnect: with a reconnect=1 chardev the device refuses to start
# ("vhost-user-scsi-pci: Failed to set msg fds." then "vhost_backend_init
# failed: Protocol error"), so a killed scsi daemon cannot be given back to
# the guest.  It does migrate (QEMU 7.2 registers no migration blocker for it
# when the back-end offers VHOST_F_LOG_ALL), so:
#
#   blk guest   vhost-user-blk-pci, chardev reconnect=1, on a vhostd (its
#               image behind a qemu-storage-daemon NBD export throttled to
#               SOAK_BLK_IOPS, default 300, so that each kill finds requests
#               in flight; SOAK_BLK_IOPS=0: the image file directly) that is
#               SIGKILLed every minute and started again on the same socket
#               (its requests in flight come back from the in-flight region
#               QEMU keeps), and every MIGRATE_EVERY minutes, half a minute
#               after a kill, migrated (HMP migrate over TCP) to a new QEMU on
#               a new vhostd that opens the same image (locking=off).  Split
#               rings: vhostd tracks in-flight requests of split rings.
#   scsi guest  vhost-user-scsi-pci on one of two vhostds that are never
#               killed, migrated to the other one every MIGRATE_EVERY minutes
#               (45 s into the minute): each daemon serves, loses and regains
#               a guest again and again.  Their RssAnon and descriptor counts
#               are sampled every minute.
#
# Each guest runs bench/soak-guest.sh: both vCPUs rewrite 16 MiB in passes
# (generations) with request sizes from 4 KiB to 1 MiB and check every chunk
# by sha256, while fio rewrites another region with crc32c-checked blocks
# and verifies them.  Pass/fail:
#   - both guests print PASS: every read verified, no fio error, no block
#     error in the kernel log;
#   - each image matches, byte for byte, the layout of the guest's last pass
#     (no lost write);
#   - every restarted blk daemon was reconnected by QEMU and given the
#     in-flight region; every migration completed;
#   - no growth: a scsi daemon's descriptor count never exceeds, and its
#     RssAnon (its own memory; VmRSS also counts guest pages it touched)
#     stays within SOAK_RSS_SLACK_KB (default 8192) and 10% of, its first
#     sample in the same state (serving the guest, or idle after serving
#     it); each blk generation (a fresh process, sampled just before it is
#     killed or stopped) likewise against the first generation;
#   - every daemon that is stopped (not killed) exits 0 with no error line.
# Prints a table per generation and per minute.  Exit 0 only if all hold.
#
# Environment: MIGRATE_EVERY (minutes, default 3), SOAK_RSS_SLACK_KB, SOAK_BLK_IOPS,
# VHOSTD_BIN (default build/vhostd; build-san/vhostd works too), GUEST_LOG_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --stress ]]; then
	shift
	exec bench/soak-stress.sh "$@"
fi

MINUTES=${1:-10}
MIGRATE_EVERY=${MIGRATE_EVERY:-3}
RSS_SLACK_KB=${SOAK_RSS_SLACK_KB:-8192}
BLK_IOPS=${SOAK_BLK_IOPS:-300}
NBD_PID=
BLK_BACKEND=
export CASE=soak
export PACKED=0 NUM_QUEUES=2 BACKEND=vhostd
source tests/guest/lib.sh
HERE=$REPO/bench
MiB=$((1 << 20))
NCHUNK=16
FIO_OFFSET=$((24 * MiB))
DISK_SIZE=$((40 * MiB))
SECONDS_TOTAL=$((MINUTES * 60))

PIDS=()		# everything to stop at the end
QEMU_BLK=	# the blk guest's current QEMU (timeout's pid)
MON_BLK=	# its monitor socket
LOG_BLK=	# its console log
BLK_PID=	# the current blk vhostd
BLK_SOCK=
GEN=0		# blk vhostd generations started
KILLS=0
MIGRATIONS=0
declare -a GEN_ROWS=() SCSI_ROWS=()

soak_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	guest_cleanup
}

# sample PID: "ANON_kB RSS_kB FDS" of a live process.  RssAnon is the
# daemon's own memory; VmRSS also counts the guest memory it touched (shared
# memfd pages), which grows with what the guest's buffers covered, not leaks.
sample() {
	local anon rss fds
	anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null) || anon=0
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null) || rss=0
	fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	echo "${anon:-0} ${rss:-0} $fds"
}

# start_blk SOCK: a new blk vhostd generation on the shared image.
start_blk() {
	GEN=$((GEN + 1))
	BLK_SOCK=$1
	"$VHOSTD_BIN" --log-level info --blk "id=vda,$BLK_BACKEND,socket=$BLK_SOCK,num-queues=$NUM_QUEUES" \
		>"$WORK/blk.$GEN.log" 2>&1 &
	BLK_PID=$!
	PIDS+=("$BLK_PID")
	wait_for_socket "$BLK_SOCK" "$BLK_PID"
	GEN_START[GEN]=$SECONDS
}
declare -a GEN_START=()

# wait_log FILE TEXT SECONDS
wait_log() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -a -q -F "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# record_gen HOW: the current blk generation's figures, before it goes,
# with how many requests it started again from the in-flight region (those
# the previous generation had in flight when it was killed).
record_gen() {
	local s n
	s=$(sample "$BLK_PID")
	n=$({ grep -a -h -o '[0-9]* request(s) were in flight' "$WORK/blk.$GEN.log" || true; } |
		awk '{s += $1} END {print s + 0}')
	RESUBMITTED=$((RESUBMITTED + n))
	GEN_ROWS+=("$GEN $BLK_PID $((SECONDS - GEN_START[GEN])) $s $n $1")
}
RESUBMITTED=0

log_errors() {
	grep -a -E 'vhostd: error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$1" |
		head -n 3 || true
}

kill_restart() {
	local old=$GEN
	record_gen killed
	glog "minute $1: SIGKILL blk vhostd generation $GEN (pid $BLK_PID)"
	kill -KILL "$BLK_PID"
	wait "$BLK_PID" 2>/dev/null || true
	KILLS=$((KILLS + 1))
	rm -f "$BLK_SOCK"
	start_blk "$BLK_SOCK"
	wait_log "$WORK/blk.$GEN.log" 'front-end connected' 30 ||
		gdie "generation $GEN: QEMU did not reconnect within 30 s"
	wait_log "$WORK/blk.$GEN.log" 'in-flight region set' 30 ||
		gdie "generation $GEN: QEMU gave back no in-flight region"
	[[ -z $(log_errors "$WORK/blk.$old.log") ]] ||
		gdie "generation $old logged errors: $(log_errors "$WORK/blk.$old.log")"
}

# qemu_cmd DEVICE_ARGS... : the guest's QEMU (as tests/guest/lib.sh boots it).
qemu_cmd() {
	# shellcheck disable=SC2054
	QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024
		-object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem
		-nodefaults -no-user-config -display none -serial stdio -no-reboot
		-append "console=ttyS0 quiet panic=-1 guest.packed=0" -kernel "$GUEST_CACHE/vmlinuz"
		"$@")
}

hmp() { python3 "$REPO/tests/guest/cases/blk-migrate/hmp.py" "$@"; }

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_blk_qemu SOCK N [incoming ARGS]: QEMU number N of the blk guest.
start_blk_qemu() {
	local sock=$1 n=$2
	shift 2
	MON_BLK=$WORK/mon-blk-$n.sock
	LOG_BLK=$GUEST_LOG_DIR/soak.blk.$n.log
	qemu_cmd -initrd "$WORK/initrd-blk" -monitor "unix:$MON_BLK,server,nowait" \
		-chardev "socket,id=c0,path=$sock,reconnect=1" \
		-device "vhost-user-blk-pci,chardev=c0,num-queues=$NUM_QUEUES,id=vblk0" "$@"
	timeout -k 10 $((SECONDS_TOTAL + 600)) "${QEMU[@]}" </dev/null >"$LOG_BLK" 2>&1 &
	QEMU_BLK=$!
	PIDS+=("$QEMU_BLK")
}

migrate() {
	local port old_qemu=$QEMU_BLK old_mon=$MON_BLK old_pid=$BLK_PID old_gen=$GEN rc=0
	MIGRATIONS=$((MIGRATIONS + 1))
	port=$(free_port)
	start_blk "$WORK/blk-m$MIGRATIONS.sock"
	start_blk_qemu "$BLK_SOCK" "$MIGRATIONS" -incoming "tcp:127.0.0.1:$port"
	wait_log "$WORK/blk.$GEN.log" 'front-end connected' 30 ||
		gdie "migration $MIGRATIONS: the destination QEMU never connected to vhostd"
	glog "minute $1: migrating the blk guest to QEMU $MIGRATIONS on vhostd generation $GEN"
	hmp_migrate "$old_mon" "$port" "blk migration $MIGRATIONS"
	hmp "$old_mon" quit >/dev/null || true
	wait "$old_qemu" 2>/dev/null || true
	# The source's daemon: stopped, not killed; it must leave cleanly.
	local save_pid=$BLK_PID save_gen=$GEN save_start=${GEN_START[GEN]}
	BLK_PID=$old_pid
	GEN=$old_gen
	record_gen migrated
	kill -TERM "$old_pid"
	wait "$old_pid" || rc=$?
	((rc == 0)) || gdie "generation $old_gen exited $rc on SIGTERM after the migration"
	[[ -z $(log_errors "$WORK/blk.$old_gen.log") ]] ||
		gdie "generation $old_gen logged errors: $(log_errors "$WORK/blk.$old_gen.log")"
	BLK_PID=$save_pid
	GEN=$save_gen
	GEN_START[GEN]=$save_start
}

# start_scsi_daemon N: scsi vhostd N (of 2) on the shared scsi image.
SCSI_PID=()
SCSI_CUR=	# the daemon the scsi guest is on
QEMU_SCSI=
MON_SCSI=
LOG_SCSI=
start_scsi_daemon() {
	local n=$1
	"$VHOSTD_BIN" --log-level info --scsi "id=sc0,socket=$WORK/scsi-$n.sock,num-queues=$NUM_QUEUES" \
		--lun "scsi=sc0,target=0,lun=0,path=$WORK/scsi.img,locking=off" \
		>"$WORK/scsi-vhostd-$n.log" 2>&1 &
	SCSI_PID[n]=$!
	PIDS+=("$!")
	wait_for_socket "$WORK/scsi-$n.sock" "$!"
	SCSI_ROWS+=("$n start idle $(sample "${SCSI_PID[n]}")")
}

# start_scsi_qemu DAEMON N [incoming ARGS]: QEMU number N of the scsi guest.
start_scsi_qemu() {
	local d=$1 n=$2
	shift 2
	SCSI_CUR=$d
	MON_SCSI=$WORK/mon-scsi-$n.sock
	LOG_SCSI=$GUEST_LOG_DIR/soak.scsi.$n.log
	qemu_cmd -initrd "$WORK/initrd-scsi" -monitor "unix:$MON_SCSI,server,nowait" \
		-chardev "socket,id=c0,path=$WORK/scsi-$d.sock" \
		-device "vhost-user-scsi-pci,chardev=c0,num_queues=$NUM_QUEUES" "$@"
	timeout -k 10 $((SECONDS_TOTAL + 600)) "${QEMU[@]}" </dev/null >"$LOG_SCSI" 2>&1 &
	QEMU_SCSI=$!
	PIDS+=("$QEMU_SCSI")
}

# hmp_migrate MONITOR PORT WHAT: migrate and wait; dies unless it completes.
hmp_migrate() {
	local status="" i t=$SECONDS
	hmp "$1" "migrate_set_parameter max-bandwidth 1G" "migrate -d tcp:127.0.0.1:$2" >/dev/null
	for ((i = 0; i < 1200; i++)); do
		status=$(hmp "$1" "info migrate" | sed -n 's/^Migration status: //p')
		[[ $status == completed || $status == failed || $status == cancelled ]] && break
		sleep 0.1
	done
	[[ $status == completed ]] || gdie "$3: migration ended as '${status:-nothing}'"
	glog "$3: migration completed in $((SECONDS - t)) s"
}

# The scsi guest moves to the other daemon; both daemons live on.
SCSI_MIGRATIONS=0
migrate_scsi() {
	local port old_qemu=$QEMU_SCSI old_mon=$MON_SCSI to=$((3 - SCSI_CUR)) conns i
	SCSI_MIGRATIONS=$((SCSI_MIGRATIONS + 1))
	port=$(free_port)
	conns=$(grep -a -c 'front-end connected' "$WORK/scsi-vhostd-$to.log" || true)
	start_scsi_qemu "$to" "$SCSI_MIGRATIONS" -incoming "tcp:127.0.0.1:$port"
	for ((i = 0; i < 300; i++)); do
		(($(grep -a -c 'front-end connected' "$WORK/scsi-vhostd-$to.log" || true) > conns)) && break
		sleep 0.1
	done
	glog "minute $1: migrating the scsi guest to QEMU $SCSI_MIGRATIONS on scsi vhostd $to"
	hmp_migrate "$old_mon" "$port" "scsi migration $SCSI_MIGRATIONS"
	hmp "$old_mon" quit >/dev/null || true
	wait "$old_qemu" 2>/dev/null || true
}

# prepare DIR IMG DEV: the guest's payload and its disk (random, so a stray
# write anywhere shows).
prepare() {
	local data=$1
	mkdir -p "$data"
	echo "$3" >"$data/dev"
	echo "$SECONDS_TOTAL" >"$data/seconds"
	echo "$FIO_OFFSET" >"$data/fio-offset"
	python3 - "$2" "$data" "$NCHUNK" "$DISK_SIZE" <<'PY'
import hashlib, os, random, sys
img, data = sys.argv[1:3]
nchunk, size = map(int, sys.argv[3:5])
MiB = 1 << 20
rng = random.Random(int.from_bytes(os.urandom(4), "little"))
open(img, "wb").write(rng.randbytes(size))
pattern = rng.randbytes(nchunk * MiB)
open(f"{data}/pattern.bin", "wb").write(pattern)
with open(f"{data}/chunks.txt", "w") as f:
    for k in range(nchunk):
        f.write(hashlib.sha256(pattern[k * MiB:(k + 1) * MiB]).hexdigest() + "\n")
PY
}

# check_image IMG DATA LAST_PASS: the first NCHUNK MiB are the last pass's layout.
check_image() {
	python3 - "$1" "$2" "$NCHUNK" "$3" <<'PY'
import sys
img, data = sys.argv[1:3]
nchunk, last = map(int, sys.argv[3:5])
MiB = 1 << 20
pattern = open(f"{data}/pattern.bin", "rb").read()
disk = open(img, "rb").read(nchunk * MiB)
bad = [i for i in range(nchunk)
       if disk[i * MiB:(i + 1) * MiB] != pattern[((i + last) % nchunk) * MiB:][:MiB]]
if bad:
    sys.exit(f"chunks {bad} differ from pass {last}'s layout")
PY
}

report_of() { tr -d '\r' <"$1" | sed -n "s/^REPORT $2 //p" | tail -n 1; }

main() {
	require_backend
	guest_workdir
	trap soak_cleanup EXIT
	mkdir -p "$GUEST_LOG_DIR"
	rm -f "$GUEST_LOG_DIR"/soak.*
	prepare "$WORK/data-blk" "$WORK/blk.img" /dev/vda
	prepare "$WORK/data-scsi" "$WORK/scsi.img" /dev/sda
	"$GUEST_DIR/build-initramfs.sh" -o "$WORK/initrd-blk" "$HERE/soak-guest.sh" "$WORK/data-blk"
	"$GUEST_DIR/build-initramfs.sh" -o "$WORK/initrd-scsi" "$HERE/soak-guest.sh" "$WORK/data-scsi"

	# The two scsi daemons: never killed, watched; the guest moves between them.
	start_scsi_daemon 1
	start_scsi_daemon 2
	start_scsi_qemu 1 0

	# The blk daemon and guest; the image directly, or behind a throttled
	# NBD export so that a kill finds requests in flight.  (nbdkit's delay
	# filter, 1.32, aborted when vhostd was killed with requests in it.)
	if [[ $BLK_IOPS == 0 ]]; then
		BLK_BACKEND="path=$WORK/blk.img,locking=off"
	else
		qemu-storage-daemon --object "throttle-group,id=tg0,x-iops-total=$BLK_IOPS" \
			--blockdev "driver=file,node-name=file0,filename=$WORK/blk.img" \
			--blockdev driver=throttle,node-name=thr0,throttle-group=tg0,file=file0 \
			--nbd-server "addr.type=unix,addr.path=$WORK/nbd.sock" \
			--export type=nbd,id=e0,node-name=thr0,name=soak,writable=on \
			>"$WORK/qsd-nbd.log" 2>&1 &
		NBD_PID=$!
		PIDS+=("$NBD_PID")
		wait_for_socket "$WORK/nbd.sock" "$NBD_PID"
		BLK_BACKEND="backend=nbd,uri=nbd+unix:///soak?socket=$WORK/nbd.sock"
	fi
	start_blk "$WORK/blk.sock"
	start_blk_qemu "$BLK_SOCK" 0
	glog "guests booting (logs $GUEST_LOG_DIR/soak.*.log); $MINUTES minutes," \
		"SIGKILL every minute, migration every $MIGRATE_EVERY"
	wait_log "$LOG_BLK" 'soak start' 300 || gdie "the blk guest did not start its workload"
	local t0=$SECONDS next_kill next_mig next_smig next_sample=$((SECONDS + 60)) minute=0 d
	next_kill=$((t0 + 60))
	next_mig=$((t0 + MIGRATE_EVERY * 60 + 30))
	next_smig=$((t0 + MIGRATE_EVERY * 60 + 45))
	while kill -0 "$QEMU_BLK" 2>/dev/null; do
		if ((SECONDS >= next_sample)); then
			for d in 1 2; do
				SCSI_ROWS+=("$d $(((SECONDS - t0 + 30) / 60)) $([[ $d == "$SCSI_CUR" ]] &&
					echo guest || echo idle) $(sample "${SCSI_PID[d]}")")
			done
			next_sample=$((next_sample + 60))
		fi
		if ((SECONDS >= next_smig && next_smig + 45 <= t0 + SECONDS_TOTAL)) &&
			kill -0 "$QEMU_SCSI" 2>/dev/null; then
			migrate_scsi "$(((next_smig - t0) / 60)).75"
			next_smig=$((next_smig + MIGRATE_EVERY * 60))
		fi
		if ((SECONDS >= next_kill && next_kill + 15 <= t0 + SECONDS_TOTAL)); then
			minute=$(((next_kill - t0) / 60))
			kill_restart "$minute"
			next_kill=$((next_kill + 60))
		fi
		if ((SECONDS >= next_mig && next_mig + 45 <= t0 + SECONDS_TOTAL)); then
			migrate "$(((next_mig - t0) / 60)).5"
			next_mig=$((next_mig + MIGRATE_EVERY * 60))
		fi
		sleep 1
	done
	local rc=0
	wait "$QEMU_BLK" || rc=$?
	wait "$QEMU_SCSI" || true
	for d in 1 2; do SCSI_ROWS+=("$d end idle $(sample "${SCSI_PID[d]}")"); done
	record_gen end

	# Daemons stopped, not killed: clean exits.
	kill -TERM "$BLK_PID" "${SCSI_PID[1]}" "${SCSI_PID[2]}"
	local brc=0 src=0
	wait "$BLK_PID" || brc=$?
	wait "${SCSI_PID[1]}" || src=$?
	wait "${SCSI_PID[2]}" || src=$?
	if [[ -n $NBD_PID ]]; then
		kill -TERM "$NBD_PID"
		wait "$NBD_PID" || true
	fi
	PIDS=()

	print_tables
	local fail=0 r
	r=$(grep -a -o 'GUEST-RESULT: .*' "$LOG_BLK" | tr -d '\r' | tail -n 1) || true
	[[ $r == "GUEST-RESULT: PASS" ]] || { glog "FAIL: blk guest: ${r:-no result (qemu $rc)}"; fail=1; }
	r=$(grep -a -o 'GUEST-RESULT: .*' "$LOG_SCSI" | tr -d '\r' | tail -n 1) || true
	[[ $r == "GUEST-RESULT: PASS" ]] || { glog "FAIL: scsi guest: ${r:-no result}"; fail=1; }
	((brc == 0)) || { glog "FAIL: the last blk vhostd exited $brc"; fail=1; }
	((src == 0)) || { glog "FAIL: a scsi vhostd exited $src"; fail=1; }
	for f in "$WORK"/blk.*.log "$WORK"/scsi-vhostd-*.log; do
		cp "$f" "$GUEST_LOG_DIR/soak.vhostd-$(basename "$f")" 2>/dev/null || true
		[[ -z $(log_errors "$f") ]] || { glog "FAIL: $(basename "$f"): $(log_errors "$f")"; fail=1; }
	done
	local lb ls
	lb=$(report_of "$LOG_BLK" LAST_PASS)
	ls=$(report_of "$LOG_SCSI" LAST_PASS)
	if [[ -n $lb ]] && ! check_image "$WORK/blk.img" "$WORK/data-blk" "$lb"; then
		glog "FAIL: the blk image is not pass $lb's"
		fail=1
	fi
	if [[ -n $ls ]] && ! check_image "$WORK/scsi.img" "$WORK/data-scsi" "$ls"; then
		glog "FAIL: the scsi image is not pass $ls's"
		fail=1
	fi
	check_growth || fail=1
	glog "blk: $(report_of "$LOG_BLK" PASSES) passes and $(report_of "$LOG_BLK" FIO_RUNS)" \
		"fio runs verified; $KILLS SIGKILLs ($RESUBMITTED requests were in flight and started" \
		"again), $MIGRATIONS migrations, $GEN daemon generations"
	glog "scsi: $(report_of "$LOG_SCSI" PASSES) passes and $(report_of "$LOG_SCSI" FIO_RUNS)" \
		"fio runs verified; $SCSI_MIGRATIONS migrations between two daemons that live on"
	((fail == 0)) || gdie "soak failed"
	glog "soak passed"
}

print_tables() {
	local row
	{
		echo "blk vhostd generations (sampled just before each left):"
		printf '  %-4s %-8s %-8s %-9s %-9s %-4s %-6s %s\n' gen pid seconds anon_kB rss_kB fds resub how
		for row in "${GEN_ROWS[@]}"; do
			# shellcheck disable=SC2086
			printf '  %-4s %-8s %-8s %-9s %-9s %-4s %-6s %s\n' $row
		done
		echo "scsi vhostds, never killed (at start, per minute, after the guest left):"
		printf '  %-7s %-7s %-6s %-9s %-9s %s\n' daemon minute guest anon_kB rss_kB fds
		for row in "${SCSI_ROWS[@]}"; do
			# shellcheck disable=SC2086
			printf '  %-7s %-7s %-6s %-9s %-9s %s\n' $row
		done
	} | tee "$GUEST_LOG_DIR/soak.figures.txt" >&2
}

# No growth of memory or descriptors (see the top).  A scsi daemon is
# compared with itself in the same state (serving the guest, or idle); a blk
# generation with the first one.
check_growth() {
	local row d m state anon rss fds g ok=0 key
	local -A first_fds=() first_anon=()
	for row in "${SCSI_ROWS[@]}"; do
		read -r d m state anon rss fds <<<"$row"
		# Before its first guest a daemon has not set up all it keeps.
		[[ $m != start ]] || continue
		key=$d.$state
		if [[ -z ${first_fds[$key]:-} ]]; then
			first_fds[$key]=$fds
			first_anon[$key]=$anon
			continue
		fi
		((fds <= first_fds[$key])) ||
			{ glog "FAIL: scsi vhostd $d ($state) at $m: $fds descriptors, ${first_fds[$key]} at first"; ok=1; }
		((anon <= first_anon[$key] + first_anon[$key] / 10 + RSS_SLACK_KB)) ||
			{ glog "FAIL: scsi vhostd $d ($state) at $m: RssAnon $anon kB, ${first_anon[$key]} at first"; ok=1; }
	done
	read -r _ _ _ anon _ fds _ <<<"${GEN_ROWS[0]}"
	first_anon[blk]=$anon
	first_fds[blk]=$fds
	for row in "${GEN_ROWS[@]}"; do
		read -r g _ _ anon _ fds _ <<<"$row"
		((fds <= first_fds[blk])) ||
			{ glog "FAIL: blk generation $g: $fds descriptors, ${first_fds[blk]} in the first"; ok=1; }
		((anon <= first_anon[blk] + first_anon[blk] / 10 + RSS_SLACK_KB)) ||
			{ glog "FAIL: blk generation $g: RssAnon $anon kB, ${first_anon[blk]} in the first"; ok=1; }
	done
	return $ok
}

main "$@"

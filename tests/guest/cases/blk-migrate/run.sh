#!/usr/bin/env bash
# blk-migrate: live migration of a guest whose disk is served by vhostd,
# to a second QEMU on a second vhostd that opens the same image
# (locking=off on both), on the same host.
#
# QEMU A boots the guest on vhostd A; QEMU B waits with -incoming on
# vhostd B. The guest runs migverify (guest.sh): known data written, read
# back with O_DIRECT into buffers that only the device writes, each read
# checked at once and every buffer checked again after each pass. Once
# the guest has done two passes the host migrates A to B over TCP (HMP
# "migrate") and then writes a marker into the image; the guest must do
# three more passes on B with every check passing: QEMU re-sent each page
# vhostd A wrote while the migration ran, because vhostd A marked it in
# the dirty log.
#
# Then the same again with vhostd A started with the test switch
# VHOSTD_TEST_BREAK_DIRTY_LOG=1 (it negotiates logging but never sets a
# bit). That run must FAIL with stale data (a read completed while QEMU
# stopped the source's rings reaches the guest with the buffer's old
# contents, or a re-check finds an older pass's data): proof that the check
# sees the difference between logging and not.
#
# MIGRATE_RUNS="good" or "broken" runs one half only.
# BACKEND=qsd runs the first half with qemu-storage-daemon (file
# locking=off) as the reference; it has no test switch.
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
MiB=$((1 << 20))
DISK_SIZE=$((48 * MiB))
GUEST_SECONDS=${GUEST_SECONDS:-100}	# the most; it stops 3 passes after the move
CONTROL_OFFSET=$((40 * MiB))	# where the host tells the guest it has moved
GUEST_TIMEOUT=${GUEST_TIMEOUT:-150}
SUFFIX=
if ((PACKED)); then SUFFIX=-packed; fi
PIDS=()

main() {
	require_backend
	guest_workdir
	trap 'migrate_cleanup' EXIT
	local data=$WORK/data
	mkdir "$data"
	echo "$GUEST_SECONDS" >"$data/seconds"
	echo "$CONTROL_OFFSET" >"$data/control"
	cc -O2 -static -Wall -Wextra -o "$data/migverify" "$HERE/migverify.c" ||
		gdie "cannot build migverify (static libc: libc6-dev)"
	"$GUEST_DIR/build-initramfs.sh" -o "$WORK/initrd" "$HERE/guest.sh" "$data"

	if [[ ${MIGRATE_RUNS:-good broken} == *good* ]]; then
		migrate_run good || gdie "migration with dirty logging failed"
	fi
	if [[ $BACKEND == vhostd && ${MIGRATE_RUNS:-good broken} == *broken* ]]; then
		if migrate_run broken; then
			gdie "with dirty logging switched off the guest saw no stale data:" \
				"this test cannot tell logging from none"
		fi
		# Stale either way: a page the device wrote before the move came
		# back old, seen by the next re-check (STALE buffer), or a read
		# the source completed while it stopped its rings reached the
		# guest as the page's old contents (read wrong at once).
		grep -a -q -E 'STALE buffer|read wrong at once' "$LOG_B" ||
			gdie "logging off: the guest failed, but not with stale data (see $LOG_B)"
		glog "logging off: the guest saw stale data, as it must"
	fi
}

# start_backend_at NAME SOCK [broken]: vhostd or qsd on the shared image.
start_backend_at() {
	local name=$1 sock=$2 env=()
	if [[ ${3:-} == broken ]]; then env=(VHOSTD_TEST_BREAK_DIRTY_LOG=1); fi
	case $BACKEND in
	vhostd)
		env "${env[@]}" "$VHOSTD_BIN" --log-level info \
			--blk "id=vda,path=$WORK/disk.img,socket=$sock,num-queues=$NUM_QUEUES,locking=off" \
			>"$WORK/$name.log" 2>&1 &
		;;
	qsd)
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=file0,filename=$WORK/disk.img,cache.direct=on,aio=io_uring,locking=off" \
			--blockdev driver=raw,node-name=raw0,file=file0 \
			--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$sock,node-name=raw0,writable=on,num-queues=$NUM_QUEUES" \
			>"$WORK/$name.log" 2>&1 &
		;;
	esac
	PIDS+=($!)
	wait_for_socket "$sock" "$!"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# qemu_cmd SOCK MONITOR: the guest's QEMU command line (as boot_guest's).
qemu_cmd() {
	local dev="vhost-user-blk-pci,chardev=c0,num-queues=$NUM_QUEUES,id=vblk0"
	if ((PACKED)); then dev+=",packed=on"; fi
	# shellcheck disable=SC2054
	QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024
		-object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem
		-nodefaults -no-user-config -display none -serial stdio -no-reboot
		-kernel "$GUEST_CACHE/vmlinuz" -initrd "$WORK/initrd"
		-append "console=ttyS0 quiet panic=-1 guest.packed=$PACKED"
		-chardev "socket,id=c0,path=$1" -device "$dev"
		-monitor "unix:$2,server,nowait")
}

hmp() { python3 "$HERE/hmp.py" "$@"; }

# wait_console LOG TEXT PID: until LOG shows TEXT; false if PID ended.
wait_console() {
	while ! grep -a -q -F "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.2
	done
}

# migrate_run good|broken: one migration; true if the guest passed.
migrate_run() {
	local mode=$1 port qa qb status="" i start rc=0 result
	rm -f "$WORK"/*.sock
	LOG_A=$GUEST_LOG_DIR/$CASE$SUFFIX.$mode.A.log
	LOG_B=$GUEST_LOG_DIR/$CASE$SUFFIX.$mode.B.log
	mkdir -p "$GUEST_LOG_DIR"
	python3 - "$WORK/disk.img" "$DISK_SIZE" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(int(sys.argv[2])))
PY
	start_backend_at vhostd-A "$WORK/a.sock" "$([[ $mode == broken ]] && echo broken)"
	start_backend_at vhostd-B "$WORK/b.sock"
	port=$(free_port)

	qemu_cmd "$WORK/b.sock" "$WORK/mon-b.sock"
	timeout -k 10 "$GUEST_TIMEOUT" "${QEMU[@]}" -incoming "tcp:127.0.0.1:$port" \
		</dev/null >"$LOG_B" 2>&1 &
	qb=$!
	PIDS+=("$qb")
	qemu_cmd "$WORK/a.sock" "$WORK/mon-a.sock"
	timeout -k 10 "$GUEST_TIMEOUT" "${QEMU[@]}" </dev/null >"$LOG_A" 2>&1 &
	qa=$!
	PIDS+=("$qa")
	glog "$mode: guest booting on A (log $LOG_A), B waits on port $port"

	wait_console "$LOG_A" MIGRATE-READY "$qa" || gdie "$mode: guest on A ended before migrating"
	start=${EPOCHREALTIME/./}
	hmp "$WORK/mon-a.sock" "migrate_set_parameter max-bandwidth 1G" \
		"migrate -d tcp:127.0.0.1:$port" >/dev/null
	for ((i = 0; i < 600; i++)); do
		status=$(hmp "$WORK/mon-a.sock" "info migrate" | sed -n 's/^Migration status: //p')
		[[ $status == completed || $status == failed || $status == cancelled ]] && break
		sleep 0.1
	done
	[[ $status == completed ]] || gdie "$mode: migration ended as '${status:-nothing}'"
	glog "$mode: migration completed in $(((${EPOCHREALTIME/./} - start) / 1000)) ms," \
		"at $(grep -a -c 'worker 0 pass' "$LOG_A") passes on A"
	hmp "$WORK/mon-a.sock" "info migrate" | grep -E 'total time|downtime|transferred ram|dirty sync' |
		sed "s/^/[$CASE] $mode: /" >&2 || true
	# The guest goes on for three more passes, now on B.
	printf 'vhostd-migrated\0' |
		dd of="$WORK/disk.img" bs=512 seek=$((CONTROL_OFFSET / 512)) conv=notrunc status=none
	hmp "$WORK/mon-a.sock" quit || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$qa" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$qa" 2>/dev/null || true
	wait "$qa" 2>/dev/null || true

	wait "$qb" || rc=$?
	result=$(grep -a -o 'GUEST-RESULT: .*' "$LOG_B" | tr -d '\r' | tail -n 1) || true
	glog "$mode: guest on B: ${result:-no result (qemu exit $rc)}," \
		"$(grep -a -c 'worker 0 pass' "$LOG_B") passes after the move"
	stop_all
	check_backend_logs "$mode"
	if [[ $result != "GUEST-RESULT: PASS" ]]; then
		grep -a 'migverify:' "$LOG_B" | grep -v ' ok in ' | head -n 5 | sed "s/^/[$CASE] | /" >&2 || true
		return 1
	fi
	(($(grep -a -c 'worker 0 pass.*(moved)' "$LOG_B") >= 3)) ||
		gdie "$mode: fewer than three passes ran after the migration: nothing was checked on B"
	return 0
}

stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
}

# Both daemons leave no error (a broken device, a sanitizer report).
check_backend_logs() {
	local f bad
	[[ $BACKEND == vhostd ]] || return 0
	for f in "$WORK"/vhostd-A.log "$WORK"/vhostd-B.log; do
		cp "$f" "$GUEST_LOG_DIR/$CASE$SUFFIX.$1.$(basename "$f")" 2>/dev/null || true
		bad=$(grep -a -E 'vhostd: error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$f" |
			head -n 3) || true
		[[ -z $bad ]] || gdie "$1: $(basename "$f") reports: $bad"
	done
	grep -q 'dirty-page log' "$WORK/vhostd-A.log" ||
		gdie "$1: QEMU never handed vhostd A a dirty log"
}

migrate_cleanup() {
	stop_all
	guest_cleanup
}

main "$@"; exit

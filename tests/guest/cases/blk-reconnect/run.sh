#!/usr/bin/env bash
# blk-reconnect: the back-end is restarted under a guest doing I/O and no data
# is lost. QEMU connects as a reconnecting client (reconnect=1). While the
# guest runs write-and-verify passes, the host stops the back-end with
# SIGTERM (it finishes the requests it has popped and flushes them to the
# used ring), waits a second and starts a fresh one on the same image and
# socket -- twice. QEMU's vhost-user-blk takes the disconnect as a device
# stop whose GET_VRING_BASE cannot be answered and restores each ring's
# last_avail_idx from the used index in guest memory, so what was completed
# stays completed and what was never popped stays in the avail ring for the
# next back-end. Every pass must verify in the guest, and the host then
# compares the whole image with the expected one byte for byte.
#
# Packed rings: QEMU 7.2 cannot resume one by itself: a packed ring has no
# used index in shared memory, and virtio_queue_packed_restore_last_avail_idx()
# (hw/virtio/virtio.c) is a no-op, so after a disconnect QEMU hands the new
# back-end the last_avail_idx/wrap counter it got from the last *successful*
# GET_VRING_BASE (the start of the session: 0 with wrap 1; seen: base 0x8000
# again after 0x8019). Without more the new back-end starts in the wrong
# place of the ring and the guest's I/O hangs. vhostd keeps its packed
# positions and wrap counters in the in-flight region
# (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, which QEMU keeps across the
# disconnect) and trusts the region over that base, so the packed variant
# runs with BACKEND=vhostd (skipped for qsd, which has no packed ring).
#
# blk-crash (CRASH=1) also runs fio verify after the passes and kills the
# back-end once more in it with many requests in flight (see FIO_INFLIGHT).
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"

MiB=$((1 << 20))
DISK_SIZE=$((48 * MiB))
# blk-crash: after the passes, fio verify (two jobs at iodepth 64, 4 KiB
# random writes) over [48 MiB, 80 MiB), and one more SIGKILL in it, by the
# back-end itself once a ring holds FIO_INFLIGHT requests recorded in
# flight (test hook VHOSTD_TEST_CRASH=inflight:N): the kill with many
# requests in flight, whatever the timing of the machine.
FIO_INFLIGHT=${FIO_INFLIGHT:-32}
CMP_BYTES=$DISK_SIZE
NCHUNK=32	# the first 32 MiB are rewritten every pass, the rest never
PASSES=${PASSES:-6}
RESTART_IN_PASSES=${RESTART_IN_PASSES:-"1 3"}	# restart while these passes write
DOWN_SECONDS=${DOWN_SECONDS:-1}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-150}
QEMU_PID=
RESTARTS=0
CRASH=${CRASH:-0}	# blk-crash: SIGKILL instead of SIGTERM
SUFFIX=
if ((PACKED)); then SUFFIX=-packed; fi

main() {
	require_backend
	if ((PACKED)) && [[ $BACKEND != vhostd ]]; then
		glog "packed ring: QEMU 7.2 cannot restore a packed ring's position after a" \
			"back-end disconnect and $BACKEND keeps no in-flight region for it" \
			"(see the comment in run.sh); skipped"
		exit 77
	fi
	guest_workdir
	trap 'reconnect_cleanup' EXIT
	local img=$WORK/disk.img expected=$WORK/expected.img data=$WORK/data p rc=0 fio=0
	if ((CRASH)) && [[ $BACKEND == vhostd ]]; then fio=1; fi
	if ((fio)); then DISK_SIZE=$((80 * MiB)); fi
	prepare "$img" "$expected" "$data"
	if ((fio)); then echo "$FIO_INFLIGHT" >"$data/fio"; fi

	# Every vhostd instance logs the rings' bases, which shows where each
	# one resumed.
	if [[ $BACKEND == vhostd ]]; then VHOSTD_ARGS=(--log-level debug); fi
	start_backend "$img"
	blk_device "$SOCK" reconnect=1

	GUEST_LOG=${GUEST_LOG:-$GUEST_LOG_DIR/$CASE$SUFFIX.log}
	mkdir -p "$(dirname "$GUEST_LOG")"
	rm -f "$GUEST_LOG"
	boot_guest "$(dirname "$0")/guest.sh" "$data" &
	QEMU_PID=$!

	for p in $RESTART_IN_PASSES; do
		wait_console "pass $p writing" || break
		sleep 0.1	# into the middle of the writes (~1 s under TCG)
		# The last back-end of the passes also serves fio: it kills itself there.
		if ((fio)) && [[ $p == "${RESTART_IN_PASSES##* }" ]]; then
			VHOSTD_TEST_CRASH=inflight:$FIO_INFLIGHT restart_backend
		else
			restart_backend
		fi
	done
	if ((fio)) && wait_console "fio writing"; then
		fio_crash
	fi
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=
	stop_backend || gdie "the last back-end did not exit cleanly"
	keep_backend_log
	((rc == 0)) || gdie "the guest failed (after $RESTARTS restarts)"
	((RESTARTS == $(wc -w <<<"$RESTART_IN_PASSES") + fio)) ||
		gdie "only $RESTARTS back-end restarts happened"
	if ((fio)); then
		grep -a -q "fio verified" "$GUEST_LOG" || gdie "the guest's fio did not verify"
		# fio's region is the guest's: the host checks the rest.
		CMP_BYTES=$((48 * MiB))
	fi

	check_stalls
	if [[ $BACKEND == vhostd ]]; then check_resumed; fi
	cmp -n "$CMP_BYTES" "$img" "$expected" >&2 || gdie "image differs from the expected one"
	if ((fio)); then check_fio_kill; fi
	glog "image matches after $RESTARTS restarts"
}

# The image starts random (so a stray write anywhere shows), the pattern is
# NCHUNK random MiB, chunks.txt their sha256s, expected.img the image after
# the last pass.
prepare() {
	local img=$1 expected=$2 data=$3
	mkdir "$data"
	echo "$PASSES" >"$data/passes"
	python3 - "$img" "$expected" "$data" "$NCHUNK" "$PASSES" "$DISK_SIZE" <<'PY'
import hashlib, random, sys
img, expected, data = sys.argv[1:4]
nchunk, passes, size = map(int, sys.argv[4:7])
MiB = 1 << 20
rng = random.Random(20240611)
disk = bytearray(rng.randbytes(size))
pattern = rng.randbytes(nchunk * MiB)
open(img, "wb").write(disk)
open(f"{data}/pattern.bin", "wb").write(pattern)
chunks = [pattern[k * MiB:(k + 1) * MiB] for k in range(nchunk)]
with open(f"{data}/chunks.txt", "w") as f:
    for c in chunks:
        f.write(hashlib.sha256(c).hexdigest() + "\n")
last = passes - 1
for i in range(nchunk):
    disk[i * MiB:(i + 1) * MiB] = chunks[(i + last) % nchunk]
open(expected, "wb").write(disk)
PY
}

# wait_console TEXT: until the guest printed TEXT; false if the guest ended.
wait_console() {
	while ! grep -a -q -F "$1" "$GUEST_LOG" 2>/dev/null; do
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			glog "guest ended before \"$1\""
			return 1
		fi
		sleep 0.1
	done
}

keep_backend_log() {
	[[ -f $WORK/backend.log ]] || return 0
	mv "$WORK/backend.log" "$WORK/backend.$RESTARTS.log"
	cp "$WORK/backend.$RESTARTS.log" "$GUEST_LOG_DIR/$CASE$SUFFIX.backend.$RESTARTS.log" 2>/dev/null ||
		true
}

restart_backend() {
	if ((CRASH)); then
		# blk-crash: no drain; what was in flight is in the region QEMU keeps.
		glog "killing the back-end (pid $BACKEND_PID) with SIGKILL under guest I/O"
		kill -KILL "$BACKEND_PID"
		wait "$BACKEND_PID" 2>/dev/null || true
		BACKEND_PID=
		rm -f "$SOCK"
	else
		glog "stopping the back-end (pid $BACKEND_PID) under guest I/O"
		stop_backend || gdie "back-end $RESTARTS did not exit cleanly on SIGTERM"
	fi
	keep_backend_log
	sleep "$DOWN_SECONDS"
	RESTARTS=$((RESTARTS + 1))
	start_backend "$WORK/disk.img"
	glog "back-end restarted (pid $BACKEND_PID)"
}

# blk-crash's kill under fio: the back-end kills itself once a ring holds
# FIO_INFLIGHT requests in flight; restart it.
fio_crash() {
	local i
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$BACKEND_PID" 2>/dev/null || break
		kill -0 "$QEMU_PID" 2>/dev/null || gdie "the guest ended before the kill under fio"
		sleep 0.1
	done
	kill -0 "$BACKEND_PID" 2>/dev/null &&
		gdie "no ring held $FIO_INFLIGHT requests in flight during fio in 120 s"
	wait "$BACKEND_PID" 2>/dev/null || true
	glog "the back-end (pid $BACKEND_PID) killed itself (SIGKILL) under fio"
	BACKEND_PID=
	rm -f "$SOCK"
	keep_backend_log
	sleep "$DOWN_SECONDS"
	RESTARTS=$((RESTARTS + 1))
	start_backend "$WORK/disk.img"
	glog "back-end restarted (pid $BACKEND_PID)"
}

# The back-end after the kill under fio started again what the killed one
# had in flight: at least FIO_INFLIGHT on one ring.
check_fio_kill() {
	local killed=$WORK/backend.$((RESTARTS - 1)).log next=$WORK/backend.$RESTARTS.log n
	grep -q "test hook: SIGKILL with [0-9]* requests in flight" "$killed" ||
		gdie "the back-end under fio did not kill itself with requests in flight"
	glog "under fio: $(grep -o "SIGKILL with [0-9]* requests in flight on a ring" "$killed")"
	n=$({ grep -h -o '[0-9]* request(s) were in flight' "$next" || true; } |
		awk '{s += $1} END {print s + 0}')
	((n >= FIO_INFLIGHT)) ||
		gdie "after the kill under fio only $n request(s) were started again"
	glog "under fio: $n request(s) in flight at the kill, all started again; fio verified"
}

# A pass with a restart must have waited out the outage: proof that the
# guest had requests outstanding while no back-end was there.
check_stalls() {
	local p s
	glog "seconds per pass: $(guest_report PASS_SECONDS | awk '{printf "%s ", $2}')"
	for p in $RESTART_IN_PASSES; do
		s=$(guest_report PASS_SECONDS | awk -v p="$p" '$1 == p {print $2}')
		[[ -n $s ]] || gdie "no time reported for pass $p"
		awk -v s="$s" -v d="$DOWN_SECONDS" 'BEGIN {exit !(s >= d)}' ||
			gdie "pass $p took ${s}s, less than the ${DOWN_SECONDS}s outage: the restart missed its I/O"
	done
}

# Each later vhostd must have been driven again by QEMU and started its rings
# at a non-zero base: the position QEMU restored from the used index.
check_resumed() {
	local i log bases n
	for ((i = 1; i <= RESTARTS; i++)); do
		log=$WORK/backend.$i.log
		grep -q 'front-end connected' "$log" || gdie "back-end $i: QEMU did not reconnect"
		if ((CRASH)); then
			grep -q 'in-flight region set' "$log" ||
				gdie "back-end $i: QEMU gave back no in-flight region (SET_INFLIGHT_FD)"
			# A ring with none in flight at the kill logs nothing.
			n=$({ grep -h -o '[0-9]* request(s) were in flight' "$log" || true; } |
				awk '{s += $1} END {print s + 0}')
			glog "back-end $i: $n request(s) were in flight at the kill and started again"
		fi
		bases=$(sed -n 's/.*:\(q[0-9]*\): started (size [0-9]*, base \(0x[0-9a-f]*\|0\)).*/\1=\2/p' "$log" |
			tr '\n' ' ')
		glog "back-end $i resumed rings at: ${bases:-nothing}"
		# Packed: QEMU's base is stale; the region's position must have won.
		if ((PACKED)); then
			grep -q 'resuming at slot .* (the front-end said' "$log" ||
				gdie "back-end $i: no ring resumed from the in-flight region's position"
			glog "back-end $i: $(grep -o 'q[0-9]*: resuming at slot .*' "$log" | tr '\n' ';')"
		fi
		[[ $bases == *"=0x"[1-9a-f]* ]] || gdie "back-end $i started no ring past index 0"
	done
}

reconnect_cleanup() {
	if [[ -n $QEMU_PID ]]; then
		pkill -P "$QEMU_PID" 2>/dev/null || true
		kill "$QEMU_PID" 2>/dev/null || true
	fi
	guest_cleanup
}

main "$@"

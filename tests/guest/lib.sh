# shellcheck shell=bash
# Host-side helpers for the real-guest tests; sourced, not run.
#
# A case driver typically does:
#   source "$(dirname "$0")/../../lib.sh"
#   require_backend                  # exit 77 when the back-end is missing
#   guest_workdir                    # $WORK, removed (and back-end killed) on exit
#   start_backend "$WORK/disk.img"   # $SOCK, $BACKEND_PID
#   blk_device "$SOCK"               # add a vhost-user-blk-pci to the guest
#   boot_guest guest.sh "$WORK/data" # 0 only when the guest printed PASS
#   stop_backend                     # flushes and releases the image
#
# Environment:
#   BACKEND=qsd|vhostd   the vhost-user back-end under test (default qsd)
#   PACKED=0|1           offer packed=on to the guest and require that it was
#                        negotiated (qsd has no packed ring)
#   NUM_QUEUES           virtqueues per device (default 2, one per vCPU)
#   GUEST_TIMEOUT        seconds before QEMU is killed (default 300)
#   GUEST_LOG            console log path (default: $GUEST_LOG_DIR/$CASE.log)
#   GUEST_VERBOSE=1      also copy the console to stdout
#   QSD_AIO              qemu-storage-daemon aio mode (default io_uring)
#   VHOSTD_CACHE         cache root (default $REPO/.cache)

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$GUEST_DIR/../.." && pwd)
GUEST_CACHE=${VHOSTD_CACHE:-$REPO/.cache}/guest
GUEST_LOG_DIR=${GUEST_LOG_DIR:-$GUEST_CACHE/logs}
BACKEND=${BACKEND:-qsd}
PACKED=${PACKED:-0}
NUM_QUEUES=${NUM_QUEUES:-2}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-300}
VHOSTD_BIN=${VHOSTD_BIN:-$REPO/build/vhostd}
# The case name defaults to the driver's directory (cases/NAME/run.sh).
CASE=${CASE:-$(basename "$(dirname "$0")")}

WORK=
SOCK=
BACKEND_PID=
GUEST_QEMU_DEVICES=()
VHOSTD_ARGS=()	# extra vhostd options, e.g. --control SOCK

glog() { echo "[$CASE] $*" >&2; }
gdie() { glog "error: $*"; exit 1; }

# Exit with the automake "skipped" status when the back-end cannot run here,
# so run-all.sh reports SKIP rather than FAIL.
require_backend() {
	case $BACKEND in
	qsd) command -v qemu-storage-daemon >/dev/null || { glog "no qemu-storage-daemon"; exit 77; } ;;
	vhostd) [[ -x $VHOSTD_BIN ]] || { glog "$VHOSTD_BIN not built"; exit 77; } ;;
	*) gdie "unknown BACKEND=$BACKEND (qsd|vhostd)" ;;
	esac
	command -v qemu-system-x86_64 >/dev/null || { glog "no qemu-system-x86_64"; exit 77; }
}

guest_cleanup() {
	stop_backend || true
	[[ -z $WORK ]] || rm -rf "$WORK"
}

# A private temporary directory for the image, socket and payload; the trap
# also takes the back-end down when the driver fails half-way.
guest_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/vhostd-guest.XXXXXX")
	trap guest_cleanup EXIT
	trap 'exit 130' INT TERM
}

# Wait until the back-end listens on $1. Both back-ends create the socket only
# once they are ready to accept, so its existence is the readiness signal.
wait_for_socket() {
	local sock=$1 pid=$2 i
	for ((i = 0; i < 100; i++)); do
		[[ -S $sock ]] && return 0
		kill -0 "$pid" 2>/dev/null || gdie "back-end exited before creating $sock (see $WORK/backend.log)"
		sleep 0.1
	done
	gdie "no socket $sock after 10 s"
}

# start_backend IMG [ro] [discard]
# Exports IMG as a vhost-user-blk device on $WORK/vhost.sock. "ro" makes the
# export read-only; "discard" lets guest discards punch holes in IMG.
start_backend() {
	local img=$1 ro=0 discard=0 arg
	shift
	for arg; do
		case $arg in
		ro) ro=1 ;;
		discard) discard=1 ;;
		*) gdie "start_backend: unknown option $arg" ;;
		esac
	done
	SOCK=$WORK/vhost.sock
	case $BACKEND in
	qsd) start_qsd "$img" "$ro" "$discard" ;;
	vhostd) start_vhostd "$img" "$ro" "$discard" ;;
	esac
	wait_for_socket "$SOCK" "$BACKEND_PID"
}

# Command lines as tested in shared/PEERS.md. cache.direct=on keeps the host
# page cache out of the way, as our own daemon does.
start_qsd() {
	local img=$1 ro=$2 discard=$3 file raw exp
	file="driver=file,node-name=file0,filename=$img,cache.direct=on,aio=${QSD_AIO:-io_uring}"
	raw="driver=raw,node-name=raw0,file=file0"
	exp="type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$SOCK,node-name=raw0,num-queues=$NUM_QUEUES"
	if ((ro)); then
		file+=",read-only=on"
		raw+=",read-only=on"
		exp+=",writable=off"
	else
		exp+=",writable=on"
	fi
	if ((discard)); then
		file+=",discard=unmap"
		raw+=",discard=unmap"
	fi
	qemu-storage-daemon --blockdev "$file" --blockdev "$raw" --export "$exp" \
		>"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
}

# vhostd discards by default when the file system can punch holes, so the
# discard flag needs no option here.
start_vhostd() {
	local img=$1 ro=$2 blk
	blk="id=vda,path=$img,socket=$SOCK,num-queues=$NUM_QUEUES"
	if ((ro)); then blk+=",readonly=on"; fi
	"$VHOSTD_BIN" --blk "$blk" "${VHOSTD_ARGS[@]}" >"$WORK/backend.log" 2>&1 &
	BACKEND_PID=$!
}

# SIGTERM and wait, so that every write the back-end acknowledged is in the
# image before the driver inspects it.
stop_backend() {
	local pid=$BACKEND_PID i
	[[ -n $pid ]] || return 0
	BACKEND_PID=
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		glog "back-end $pid ignored SIGTERM, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	local rc=0
	wait "$pid" 2>/dev/null || rc=$?
	[[ $BACKEND == vhostd ]] || return 0
	check_vhostd_exit "$rc"
}

# vhostd must leave as it promises: exit 0 on SIGTERM, and nothing in its log
# that says a device broke or a sanitizer (build-san) found something.
check_vhostd_exit() {
	local rc=$1 bad
	bad=$(grep -a -E 'vhostd: error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' \
		"$WORK/backend.log" | head -n 5) || true
	if ((rc != 0)) || [[ -n $bad ]]; then
		sed "s/^/[$CASE] vhostd | /" "$WORK/backend.log" | tail -n 40 >&2
		glog "error: vhostd exited $rc${bad:+ with errors in its log}"
		return 1
	fi
}

# blk_device SOCK [CHARDEV_OPTIONS]
# Add a vhost-user-blk-pci device on socket SOCK to the next boot; e.g.
# "reconnect=1" makes QEMU a client that reconnects every second.
blk_device() {
	local id=c${#GUEST_QEMU_DEVICES[@]}	# unique per added device
	local dev="vhost-user-blk-pci,chardev=$id,num-queues=$NUM_QUEUES"
	if ((PACKED)); then dev+=",packed=on"; fi
	GUEST_QEMU_DEVICES+=(-chardev "socket,id=$id,path=$1${2:+,$2}" -device "$dev")
}

# boot_guest TEST.sh [DATA_DIR]
# Boots the guest with GUEST_QEMU_DEVICES, runs TEST.sh as its /test.sh and
# returns 0 only if the console shows "GUEST-RESULT: PASS". The console log
# is kept in $GUEST_LOG for later inspection.
boot_guest() {
	local test=$1 data=${2:-} initrd append rc=0 result
	# Kernel and base image come from the cache; TEST.sh and DATA go into a
	# small payload appended to the base image.
	initrd=$WORK/initrd
	"$GUEST_DIR/build-initramfs.sh" -o "$initrd" "$test" ${data:+"$data"}
	local suffix=
	if ((PACKED)); then suffix=-packed; fi
	GUEST_LOG=${GUEST_LOG:-$GUEST_LOG_DIR/$CASE$suffix.log}
	mkdir -p "$(dirname "$GUEST_LOG")"

	# panic=-1 with -no-reboot: a guest panic ends QEMU at once rather than
	# running into the timeout. quiet keeps the log readable.
	append="console=ttyS0 quiet panic=-1 guest.packed=$PACKED"
	# shellcheck disable=SC2054 # the commas are QEMU's, not array separators
	local qemu=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024
		-object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem
		-nodefaults -no-user-config -display none -serial stdio -no-reboot
		-kernel "$GUEST_CACHE/vmlinuz" -initrd "$initrd" -append "$append"
		"${GUEST_QEMU_DEVICES[@]}")

	glog "booting guest (log: $GUEST_LOG)"
	if [[ ${GUEST_VERBOSE:-0} == 1 ]]; then
		timeout -k 10 "$GUEST_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | tee "$GUEST_LOG" || rc=$?
	else
		timeout -k 10 "$GUEST_TIMEOUT" "${qemu[@]}" </dev/null >"$GUEST_LOG" 2>&1 || rc=$?
	fi

	result=$(grep -a -o 'GUEST-RESULT: .*' "$GUEST_LOG" | tr -d '\r' | tail -n 1) || true
	if [[ $result == "GUEST-RESULT: PASS" && $rc -eq 0 ]]; then
		return 0
	fi
	((rc != 124)) || result="timeout after ${GUEST_TIMEOUT}s${result:+ ($result)}"
	glog "guest failed: ${result:-no GUEST-RESULT line, qemu exit $rc}"
	[[ ${GUEST_VERBOSE:-0} == 1 ]] || tail -n 30 "$GUEST_LOG" | sed "s/^/[$CASE] | /" >&2
	return 1
}

# Values of "REPORT KEY value" lines the guest printed, one per line.
guest_report() {
	tr -d '\r' <"$GUEST_LOG" | sed -n "s/^REPORT $1 //p"
}

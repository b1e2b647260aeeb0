#!/usr/bin/env bash
# `make run`: boot a Linux guest whose disk is served by build/vhostd, show
# what the guest sees, then vhostd's own statistics.
#
# The Makefile builds vhostd first; this script builds nothing but the
# (cached) guest kernel and initramfs. DEMO_BACKEND=qsd serves the disk with
# qemu-storage-daemon instead, to compare. The disk is a 1 GiB sparse file,
# ${VHOSTD_CACHE:-.cache}/demo.img, kept between runs.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BACKEND=${DEMO_BACKEND:-vhostd}
export CASE=demo GUEST_VERBOSE=1
# shellcheck source=../tests/guest/lib.sh
source "$REPO/tests/guest/lib.sh"

CACHE=${VHOSTD_CACHE:-$REPO/.cache}
IMG=$CACHE/demo.img
VHOSTCTL=$REPO/build/vhostctl

main() {
	if [[ $BACKEND == vhostd && ! -x $VHOSTD_BIN ]]; then
		gdie "$VHOSTD_BIN is not built (run 'make', or DEMO_BACKEND=qsd to use qemu-storage-daemon)"
	fi
	require_backend
	glog "preparing the guest kernel and initramfs (cached after the first run)"
	"$GUEST_DIR/build-initramfs.sh" >/dev/null

	mkdir -p "$CACHE"
	[[ -f $IMG ]] || truncate -s 1G "$IMG"

	guest_workdir
	local ctrl=$WORK/control.sock rc=0
	# shellcheck disable=SC2034 # read by start_vhostd in lib.sh
	VHOSTD_ARGS=(--control "$ctrl")
	start_backend "$IMG"
	glog "disk $IMG served by $BACKEND (pid $BACKEND_PID) on $SOCK"

	blk_device "$SOCK"
	boot_guest "$GUEST_DIR/demo-guest.sh" || rc=$?

	if [[ $BACKEND == vhostd && -x $VHOSTCTL ]]; then
		echo
		echo "===== vhostctl --control $ctrl stats ====="
		"$VHOSTCTL" --control "$ctrl" stats || glog "vhostctl stats failed"
	fi
	stop_backend
	return "$rc"
}

main "$@"

# shellcheck shell=sh
# Helpers for guest-side test scripts (busybox ash). /init sources this file
# and then the test's /test.sh in a shell running with `set -e`.
#
# Conventions for test scripts:
#   - read inputs the host prepared from /data (the per-test payload);
#   - call fail "reason" for a check that did not hold: the reason ends up in
#     the GUEST-RESULT line the host reports;
#   - print "KEY value" lines (see report) for facts the host checks after
#     the guest has powered off.

FAIL_REASON_FILE=/tmp/.fail-reason

# Real dd, mke2fs, blkdiscard... instead of the busybox applets of the same
# name (see write_tool_functions in build-initramfs.sh).
. /etc/guest-tools.sh

log() { echo "[guest] $*"; }

# Seconds since boot, for rough timings in the console log.
uptime_s() { cut -d' ' -f1 /proc/uptime; }

fail() {
	echo "$*" >"$FAIL_REASON_FILE"
	echo "[guest] FAIL: $*"
	exit 1
}

# A line the host driver greps out of the console log. The prefix keeps it
# apart from kernel messages and from the test's own chatter.
report() { echo "REPORT $*"; }

# Value of a key=value argument on the kernel command line; empty if absent.
cmdline_arg() {
	tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1
}

# The block device node shows up asynchronously (devtmpfs is populated by a
# kernel thread after the driver's probe), so poll for it briefly.
wait_dev() {
	dev=$1
	i=0
	while [ ! -b "$dev" ]; do
		i=$((i + 1))
		[ "$i" -le 100 ] || fail "$dev did not appear"
		sleep 0.1
	done
}

# Feature bit N of a virtio device is character N+1 of its features file.
virtio_feature() {
	cut -c"$(($2 + 1))" "$1/features"
}

# Log every virtio device's negotiated features, and check the ring layout
# the host asked for with guest.packed=1 (VIRTIO_F_RING_PACKED is bit 34).
# Prints a reason and returns 1 when the check fails.
check_expected_features() {
	want_packed=$(cmdline_arg guest.packed)
	found=0
	for d in /sys/bus/virtio/devices/*; do
		[ -e "$d/features" ] || continue
		found=1
		echo "[guest] ${d##*/} device=$(cat "$d/device") features=$(cat "$d/features")" >&2
		if [ "$want_packed" = 1 ] && [ "$(virtio_feature "$d" 34)" != 1 ]; then
			echo "${d##*/}: packed ring requested but not negotiated"
			return 1
		fi
	done
	if [ "$want_packed" = 1 ] && [ "$found" = 0 ]; then
		echo "packed ring requested but there is no virtio device"
		return 1
	fi
	return 0
}

# sha256 of LEN bytes at byte offset OFF of DEV, read with O_DIRECT so the
# data comes from the device, not the guest page cache. OFF and LEN must be
# multiples of the device's logical block size. An optional fourth argument
# pins the read to that vCPU, and so to that vCPU's virtqueue.
sha256_range() {
	taskset -c "${4:-0-63}" /usr/bin/dd if="$1" iflag=direct,skip_bytes,count_bytes \
		bs=1M skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1
}

# check_ranges DEV LIST [CPU]: every "off len sha256" line of LIST must match
# DEV. With CPU (0 or 1) only every other line is checked, starting at line
# CPU+1, on that vCPU; see on_both_cpus.
check_ranges() {
	i=0
	while read -r off len want; do
		if [ -z "${3:-}" ] || [ $((i % 2)) -eq "$3" ]; then
			got=$(sha256_range "$1" "$off" "$len" "${3:-}")
			[ "$got" = "$want" ] ||
				fail "${2##*/}: $len bytes at $off read back wrong ($got, want $want)"
		fi
		i=$((i + 1))
	done <"$2"
}

# on_both_cpus CMD ARGS...: run "CMD ARGS... 0" and "CMD ARGS... 1" at the
# same time. With one virtqueue per vCPU this puts requests on both queues
# concurrently. Fails if either fails (their fail reason is kept).
on_both_cpus() {
	"$@" 0 &
	p0=$!
	"$@" 1 &
	p1=$!
	r=0
	wait "$p0" || r=1
	wait "$p1" || r=1
	[ "$r" -ne 0 ] || return 0
	[ -s "$FAIL_REASON_FILE" ] || fail "$1 failed"
	exit 1	# the failed half already logged its reason
}

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# net-errors.sh VHOSTD - vhostd --net on interfaces that are not what it
# needs: each is exit status 1 with exactly one line on stderr that says
# what to do, and no socket left behind.  Then the good cases start and
# stop cleanly: a single-queue tap with queues=1, a multi_queue tap with
# queues=2, a macvtap in bridge mode over a veth with queues=2.
# Everything lives in a network namespace of its own (vhd-net-err-PID);
# needs root (network namespaces).
set -u

VHOSTD=$1
T=$(mktemp -d /tmp/vhd-net-err.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/tap.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root for network namespaces"
	exit 77
fi
NS=vhd-net-err-$$
ns_cleanup() {
	cleanup
	ip netns del "$NS" 2>/dev/null
}
trap ns_cleanup EXIT
ip netns add "$NS" || exit 1
nsx() { ip netns exec "$NS" "$@"; }
nsx ip tuntap add dev vhd-net-sq mode tap vnet_hdr
nsx ip tuntap add dev vhd-net-mq mode tap multi_queue vnet_hdr
nsx ip tuntap add dev vhd-net-own mode tap multi_queue vnet_hdr user 0
nsx ip link add vhd-net-v0 type veth peer name vhd-net-v1
nsx ip link add link vhd-net-v0 name vhd-net-mv type macvtap mode bridge
nsx ip link set vhd-net-v0 up

# The socket's folder is open to all: the unprivileged runs must get as far as the interface.
chmod 755 "$T"
mkdir -m 1777 "$T/pub"

expect_error() { # description pattern spec [runner...]
	local what=$1 pat=$2 spec=$3 rc lines
	shift 3
	nsx "$@" "$VHOSTD" --net "id=n0,socket=$T/pub/s.sock,$spec" >"$T/out" 2>"$T/err"
	rc=$?
	lines=$(wc -l <"$T/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$T/err" && [ ! -e "$T/pub/s.sock" ]; then
		ok "$what: $(cat "$T/err")"
	else
		not_ok "$what: exit $rc, $lines lines: $(cat "$T/err")"
	fi
}

expect_start() { # description spec
	local what=$1 spec=$2 rc
	rm -f "$T/s.sock"
	# Not nsx: a function in the background is a subshell, not vhostd's PID.
	ip netns exec "$NS" "$VHOSTD" --net "id=n0,socket=$T/s.sock,$spec" >"$T/out" 2>&1 &
	DPID=$!
	if wait_for_socket "$T/s.sock" 5; then
		kill "$DPID"
		wait "$DPID"
		rc=$?
		check "$what: starts, SIGTERM exits 0" test $rc -eq 0 -a ! -e "$T/s.sock"
	else
		not_ok "$what: did not start: $(cat "$T/out")"
		kill "$DPID" 2>/dev/null
	fi
	DPID=
}

expect_error "missing tap" "no interface named vhd-net-none" tap=vhd-net-none
expect_error "tap without multi_queue, queues=2" "without multi_queue" tap=vhd-net-sq,queues=2
expect_error "a veth as tap" "is not a tap interface" tap=vhd-net-v0
expect_error "missing macvtap" "no interface named" macvtap=vhd-net-none
expect_error "a tap as macvtap" "is not a macvtap interface" macvtap=vhd-net-mq
expect_error "tap owned by root, opened as nobody" "permission denied" tap=vhd-net-own \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all
expect_error "macvtap as nobody" "permission denied" macvtap=vhd-net-mv \
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all

# Usage errors: exit 2.
nsx "$VHOSTD" --net "id=n0,socket=$T/s.sock,tap=vhd-net-mq,backend=null" 2>"$T/err"
check "tap= and backend= together: exit 2" test $? -eq 2
nsx "$VHOSTD" --net "id=n0,socket=$T/s.sock,backend=null,mac=01:00:5e:00:00:01" 2>"$T/err"
check "a multicast mac=: exit 2" test $? -eq 2
nsx "$VHOSTD" --net "id=n0,socket=$T/s.sock,backend=null,queues=32" 2>"$T/err"
check "queues=32: exit 2" test $? -eq 2

expect_start "single-queue tap, queues=1" tap=vhd-net-sq
expect_start "multi_queue tap, queues=2" tap=vhd-net-mq,queues=2
expect_start "macvtap, queues=2" macvtap=vhd-net-mv,queues=2
exit $failed

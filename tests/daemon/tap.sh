# shellcheck shell=bash disable=SC2034 # failed and BPID are read by the sourcing script
# tap.sh - what every daemon test script shares: a temporary folder $T,
# TAP-style ok / not ok lines, and clean-up of the daemon ($DPID) and load
# ($BPID) it started, by PID.  Source it after naming the folder:
#
#	T=$(mktemp -d /tmp/vhostd-test-NAME.XXXXXX)
#	. "$(dirname "$0")/tap.sh"
#
# The script ends with `exit $failed`.
DPID=
BPID=
failed=0

cleanup() {
	[ -n "$BPID" ] && kill "$BPID" 2>/dev/null
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
not_ok() {
	echo "not ok - $*"
	failed=1
}
check() { # description command...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

wait_for_socket() { # path seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# shellcheck shell=bash
# lib.sh - a Ceph cluster for the tests that need one, sourced after
# tests/daemon/tap.sh (which gives $T and the clean-up trap) or on its own.
#
#   ceph_cluster          sets $CEPH_CONF: the cluster named by
#                         $VHOSTD_CEPH_CONF when it takes writes (scripts/test.sh
#                         brings one up for every RBD test), else one of its
#                         own under $1 (ceph-up.sh), stopped by ceph_cluster_down.
#                         Returns 77 with the reason on stdout when Ceph cannot
#                         run on this machine, 1 on other failures.
#   ceph_cluster_down     stop the cluster ceph_cluster started, if it did.
#   ceph_image NAME SIZE  a fresh image rbd/NAME (an old one is removed first).
CEPH_DIR_OWN=
CEPH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ceph_takes_writes CONF: the cluster makes and removes an image within 30 s
# (a mon that answers is not enough: the OSD may be down or blocked).
ceph_takes_writes() {
	local probe=rbd/vhd-probe-$$-$RANDOM
	timeout 30 rbd -c "$1" create --size 1M "$probe" >/dev/null 2>&1 &&
		timeout 30 rbd -c "$1" rm "$probe" >/dev/null 2>&1
}

# ceph_state CONF: what the cluster says of itself, as "# " lines.
ceph_state() {
	{
		timeout 20 ceph -c "$1" --connect-timeout 10 -s
		timeout 20 ceph -c "$1" --connect-timeout 10 osd tree
	} 2>&1 | sed 's/^/# /'
}

ceph_cluster() { # dir
	local rc
	if [ -n "${VHOSTD_CEPH_CONF:-}" ]; then
		if ceph_takes_writes "$VHOSTD_CEPH_CONF"; then
			CEPH_CONF=$VHOSTD_CEPH_CONF
			echo "# using the cluster of $CEPH_CONF"
			return 0
		fi
		# Said, with the cluster's own account, and then a cluster of our own.
		echo "# the shared cluster of $VHOSTD_CEPH_CONF did not create an image within 30 s:"
		ceph_state "$VHOSTD_CEPH_CONF"
		echo "# bringing up a cluster of this test's own"
	fi
	"$CEPH_HERE/ceph-up.sh" "$1" >"$1.up" 2>&1
	rc=$?
	sed 's/^/# /' "$1.up"
	if [ "$rc" -ne 0 ]; then
		# ceph-up.sh's last line is the reason.
		CEPH_WHY=$(grep '^ceph-up:' "$1.up" | tail -n 1)
		return "$rc"
	fi
	CEPH_DIR_OWN=$1
	CEPH_CONF=$1/ceph.conf
}

ceph_cluster_down() {
	if [ -n "$CEPH_DIR_OWN" ]; then
		"$CEPH_HERE/ceph-down.sh" "$CEPH_DIR_OWN"
	fi
	CEPH_DIR_OWN=
}

ceph_image() { # name size
	rbd -c "$CEPH_CONF" rm "rbd/$1" >/dev/null 2>&1 || true
	timeout 60 rbd -c "$CEPH_CONF" create --size "$2" "rbd/$1" && return 0
	echo "# rbd create rbd/$1 failed or took over 60 s; the cluster says:"
	ceph_state "$CEPH_CONF"
	return 1
}

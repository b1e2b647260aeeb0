#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ceph-down.sh DIR - stop the daemons ceph-up.sh started in DIR, by the
# PIDs it recorded, and remove DIR (CEPH_KEEP_DIR=1: keep it, for the
# logs).  A PID is signalled only while its command line still names
# DIR's ceph.conf, so a recycled PID is never hit.
set -u

DIR=${1:?usage: ceph-down.sh DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)

ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF "$DIR/ceph.conf"; }

# The OSD first, the mon last: an OSD whose mon is gone waits 5 s for it.
for name in osd.0 mgr.x mon.a; do
	[ -f "$DIR/pids/$name" ] || continue
	pid=$(cat "$DIR/pids/$name")
	ours "$pid" || continue
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		ours "$pid" || break
		sleep 0.1
	done
	if ours "$pid"; then
		echo "ceph-down: $name ($pid) ignored SIGTERM for 10 s: SIGKILL" >&2
		kill -KILL "$pid"
	fi
done
[ "${CEPH_KEEP_DIR:-0}" = 1 ] || rm -rf "$DIR"

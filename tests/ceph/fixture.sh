#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fixture.sh - ceph-up.sh's failure paths, without a real cluster:
#   - a Ceph daemon that cannot run (a ceph-osd stand-in that fails as a
#     machine without the needed permission would): exit 77, the daemon's
#     own error as the reason, every daemon already started stopped again;
#   - a taken mon port: exit 1 (a configuration problem, never a skip).
set -u

T=$(mktemp -d /tmp/vhostd-test-ceph-fixture.XXXXXX)
# shellcheck source=tests/daemon/tap.sh
. "$(dirname "$0")/../daemon/tap.sh"
UP=$(dirname "$0")/ceph-up.sh

mkdir "$T/bin"
cat >"$T/bin/ceph-osd" <<'SH'
#!/bin/sh
echo "2026-01-01 -1 memstore(/x) mount: unable to lock: (13) Permission denied" >&2
exit 1
SH
chmod +x "$T/bin/ceph-osd"
PATH=$T/bin:$PATH "$UP" "$T/c1" >"$T/out" 2>&1
rc=$?
check "a daemon that cannot run: exit 77" test "$rc" = 77
check "... with its error as the reason" \
	grep -q '^ceph-up: ceph-osd --mkfs cannot run here: .*Permission denied' "$T/out"
left=0
for f in "$T"/c1/pids/*; do
	[ -f "$f" ] || continue
	p=$(cat "$f")
	[ -r "/proc/$p/cmdline" ] && tr '\0' '\n' <"/proc/$p/cmdline" | grep -qxF "$T/c1/ceph.conf" &&
		left=$((left + 1))
done
check "... and the mon and mgr it started are stopped" test "$left" = 0
[ "$rc" = 77 ] || sed 's/^/# /' "$T/out"

# A port in use (this script's own listener) is a plain failure.
python3 -c 'import socket,sys,time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$T/port" &
BPID=$!
for ((i = 0; i < 50; i++)); do [ -s "$T/port" ] && break; sleep 0.1; done
CEPH_PORT=$(cat "$T/port") "$UP" "$T/c2" >"$T/out2" 2>&1
rc=$?
check "a taken mon port: exit 1" test "$rc" = 1
check "... saying so" grep -q 'is in use' "$T/out2"
exit $failed

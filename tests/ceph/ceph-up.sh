#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ceph-up.sh DIR - a throwaway one-node Ceph cluster for the RBD tests:
# one ceph-mon, one ceph-mgr and one ceph-osd (memstore: the data lives in
# the OSD's memory), no systemd, no root-owned paths, everything under DIR,
# talking msgr2 on 127.0.0.1 only, with `auth none`.  Each daemon runs in
# the foreground as our child's child; its PID is kept in DIR/pids/NAME so
# that ceph-down.sh stops exactly what this script started.
#
# Leaves DIR/ceph.conf (conf= of backend=rbd, `rbd -c`, qemu's conf=) and a
# pool "rbd"; prints one line "ceph-up: cluster up in S s (mon M s, osd O s)".
#
# Exit status: 0 up; 77 (the tests' SKIP) when a daemon cannot run on this
# machine, with the daemon's own last words as the reason; 1 for anything
# else (a bad DIR, a missing program).  On failure everything started is
# stopped again and DIR/log is kept.
#
# Env: CEPH_PORT - the mon's port (default: a free one from 20000-59999);
#      the daemons take the 100 ports above it.
set -uo pipefail

DIR=${1:?usage: ceph-up.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)

die() { # status message
	echo "ceph-up: $2" >&2
	exit "$1"
}
for p in ceph-mon ceph-mgr ceph-osd ceph monmaptool rbd uuidgen; do
	command -v "$p" >/dev/null || die 1 "$p not found (scripts/deps.sh installs it)"
done
[ -e "$DIR/ceph.conf" ] && die 1 "$DIR already holds a cluster (ceph-down.sh it first)"
mkdir -p "$DIR"/{run,log,pids,mon.a,osd.0,mgr.x} || die 1 "cannot make $DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${CEPH_PORT:-}" ]; then
	PORT=$CEPH_PORT
	port_free "$PORT" || die 1 "127.0.0.1:$PORT is in use"
else
	# ceph-mon retries a taken port for ~10 s before giving up: pick a free one.
	for _ in $(seq 20); do
		PORT=$((20000 + (RANDOM % 400) * 100))
		port_free "$PORT" && break
	done
fi

ms() { date +%s%3N; }
T0=$(ms)
secs() { printf '%d.%02d' $((($2 - $1) / 1000)) $(((($2 - $1) % 1000) / 10)); }

started=()
fail() { # status message: stop what runs, keep the logs
	local f
	echo "ceph-up: $2" >&2
	for f in "$DIR"/log/*.out; do
		[ -s "$f" ] && { echo "--- $f" && tail -n 5 "$f"; } >&2
	done
	CEPH_KEEP_DIR=1 "$HERE/ceph-down.sh" "$DIR" >/dev/null 2>&1
	exit "$1"
}
trap 'fail 1 "interrupted"' INT TERM

cat >"$CONF" <<CONF
[global]
fsid = $(uuidgen)
mon host = v2:127.0.0.1:$PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
ms bind port min = $((PORT + 1))
ms bind port max = $((PORT + 100))
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
crash dir = $DIR/log
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
# a one-OSD cluster: one copy, few placement groups, no warnings about it
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# the default 1 s between Paxos proposals makes every map change slow
paxos propose interval = 0.1
ms async op threads = 2
# clients give up on a dead cluster in seconds, not minutes
client mount timeout = 15
rados mon op timeout = 15

[client]
# librbd clients (vhostd, qemu, rbd) log nowhere unless told to
log file =

[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
mon data avail warn = 2
mon data avail crit = 1

[mgr]
mgr data = $DIR/mgr.\$id

[osd]
osd data = $DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = 1610612736
memstore page set = true
memstore page size = 4096
osd op num shards = 1
osd op num threads per shard = 2
CONF

daemon() { # name program args...: run in the foreground, remember the PID
	local name=$1
	shift
	"$@" -c "$CONF" -f >"$DIR/log/$name.out" 2>&1 </dev/null &
	echo $! >"$DIR/pids/$name"
	started+=("$name")
}
alive() { kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }
C() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }
# A daemon that exited on its own: skip with its last error line as the reason.
died() {
	local why
	why=$(grep -h -i -E 'error|fail|unable|cannot|denied' "$DIR/log/$1.out" "$DIR/log/$1.log" \
		2>/dev/null | tail -n 1)
	fail 77 "$1 cannot run on this machine: ${why:-exited; see $DIR/log/$1.out}"
}

# --- monitor ---
monmaptool --create --fsid "$(sed -n 's/^fsid = //p' "$CONF")" --addv a "[v2:127.0.0.1:$PORT]" \
	"$DIR/monmap" >"$DIR/log/monmap.out" 2>&1 || fail 1 "monmaptool failed"
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >"$DIR/log/mon.a.out" 2>&1 ||
	fail 77 "ceph-mon --mkfs cannot run here: $(tail -n 1 "$DIR/log/mon.a.out")"
daemon mon.a ceph-mon -i a
for ((i = 0; ; i++)); do
	C mon stat >/dev/null 2>&1 && break
	alive mon.a || died mon.a
	((i < 100)) || fail 1 "ceph-mon not answering after 20 s"
	sleep 0.2
done
T_MON=$(ms)

# --- manager: started now, it comes up while the OSD does ---
daemon mgr.x ceph-mgr -i x

# --- OSD ---
uuid=$(uuidgen)
id=$(C osd new "$uuid" 2>"$DIR/log/osd-new.out") || fail 1 "ceph osd new: $(cat "$DIR/log/osd-new.out")"
[ "$id" = 0 ] || fail 1 "unexpected OSD id '$id'"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/osd.0.out" 2>&1 ||
	fail 77 "ceph-osd --mkfs cannot run here: $(tail -n 1 "$DIR/log/osd.0.out")"
daemon osd.0 ceph-osd -i 0
for ((i = 0; ; i++)); do
	C osd dump 2>/dev/null | grep -q '^osd\.0 up' && break
	alive osd.0 || died osd.0
	((i < 150)) || fail 1 "osd.0 not up after 30 s"
	sleep 0.2
done
T_OSD=$(ms)

C osd pool create rbd 8 8 >/dev/null 2>"$DIR/log/pool.out" ||
	fail 1 "pool create: $(cat "$DIR/log/pool.out")"
timeout 30 rbd -c "$CONF" pool init rbd 2>"$DIR/log/pool.out" ||
	fail 1 "rbd pool init: $(cat "$DIR/log/pool.out")"
T_POOL=$(ms)

# The manager: alive and known to the mon (it need not be active for I/O).
for ((i = 0; ; i++)); do
	C mgr stat 2>/dev/null | grep -q '"available": true' && break
	alive mgr.x || died mgr.x
	((i < 100)) || fail 1 "ceph-mgr not available after 20 s"
	sleep 0.2
done
T_END=$(ms)
trap - INT TERM
echo "ceph-up: cluster up in $(secs "$T0" "$T_END") s (mon $(secs "$T0" "$T_MON") s," \
	"osd $(secs "$T_MON" "$T_OSD") s, pool $(secs "$T_OSD" "$T_POOL") s," \
	"mgr ready $(secs "$T_POOL" "$T_END") s later), conf $CONF"
